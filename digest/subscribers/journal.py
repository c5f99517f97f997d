"""The subscriber list's change journal, kept beside the list.

A change made by the web endpoints, the webhooks, the bounce reader or ``digest
subscribers`` (unsubscribe, sections, subscribe, bounce, erase) is one JSON line
appended to ``.<list>.journal`` and fsynced before it is acknowledged: a few
milliseconds whatever the size of the list. Every reader of the list applies the
journal on top of the CSV; the start of a send and the ``digest subscribers``
commands fold it into the CSV (the locked, byte-preserving rewrite) and empty it.

Every change holds absolute values (a status, a set of sections), so applying
one twice gives the same list. The fold is still careful never to apply one
twice: before it renames the new list into place it writes a header line to the
journal (``folded``: the last change it wrote into the list, ``tmp``: the name of
the new list's temporary file, ``keep``: changes to a record the fold could not
read, kept until it is fixed). While that temporary file is there the rename has
not happened and every change is still pending; once it is gone the changes up
to ``folded`` are in the list. A fold that stops short of the rename takes its
header back, and the temporary file of a killed one is removed only after its
header is (:func:`unmark_fold`), so a hand save of the list afterwards cannot make
a change look folded.

A line of the wrong shape is reported (file and line) and never applied; it
stays in the journal until a person removes it. Erased addresses are also kept,
as digests, in ``.<list>.erased``: a round that started before the erasure must
not mail them once the fold has removed their line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.fsutil import atomic_write, file_lock, fsync_directory
from digest.subscribers.model import HEADER, STATUSES, Problem, check_email, check_name

__all__ = [
    "OPS",
    "Change",
    "Journal",
    "Signature",
    "SubscriberUnavailable",
    "append_change",
    "append_changes",
    "erased_digest",
    "erased_path",
    "journal_path",
    "mark_fold",
    "parse_journal",
    "read_erased",
    "read_journal",
    "record_erased",
    "settle_journal",
    "unmark_fold",
]

LOCK_WAIT = 10.0
TAIL = 1 << 16  # bytes read from the end of the journal to find the last change's number
OPS = ("add", "update", "erase")
Signature = tuple[int, int, int] | None
_SLUG = re.compile(r"^[^\s;,\x00-\x1f]+$")


class SubscriberUnavailable(SubscriberError):
    """The list cannot be read or changed right now (missing, unreadable, the record on a broken line).

    Nothing was changed; the caller should say "try again" (the web answers 503).
    """


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal")


def erased_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.erased")


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one address: ``add`` (create or update), ``update`` (if listed) or ``erase``."""

    seq: int
    key: str
    op: str
    fields: dict[str, Any]

    def line(self) -> bytes:
        record = {"seq": self.seq, "key": self.key, "op": self.op, "fields": self.fields}
        return json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Journal:
    """The journal as read: its changes in order, and the header of a fold that may not have finished."""

    changes: tuple[Change, ...] = ()
    folded: int = 0
    origin: Signature = None
    folding: bool = False  # a fold wrote its header
    keep: frozenset[int] = frozenset()
    torn: bool = False  # the last line is incomplete (a crash mid-append)
    renamed: bool | None = None  # whether the fold's new list took the list's place (None: not known)
    problems: tuple[Problem, ...] = ()  # lines of the wrong shape, never applied
    rejected: tuple[bytes, ...] = ()  # those lines as they are, kept for a person to see

    @property
    def last(self) -> int:
        """The highest change number used (a kept change may be older than the fold's header)."""
        return max([self.folded, *(c.seq for c in self.changes)])

    def pending(self, signature: Signature) -> tuple[Change, ...]:
        """The changes the list with this signature does not hold yet."""
        if not self.folding:
            return self.changes
        if self.renamed is False or (self.renamed is None and signature == self.origin):
            return self.changes  # the fold never renamed its list into place
        return tuple(c for c in self.changes if c.seq > self.folded or c.seq in self.keep)


def _check_fields(op: str, fields: dict[str, Any]) -> None:
    """Raise ValueError naming what is wrong with a change's fields."""
    unknown = sorted(set(fields) - set(HEADER))
    if unknown:
        raise ValueError(f"unknown field '{unknown[0]}'")
    if op == "erase" and fields:
        raise ValueError("an erase carries no fields")
    if op == "add" and not isinstance(fields.get("email"), str):
        raise ValueError("an add needs an email")
    for name in ("email", "name", "status", "since"):
        if name in fields and not isinstance(fields[name], str):
            raise ValueError(f"'{name}' must be a string")
    sections = fields.get("sections", [])
    if not isinstance(sections, list) or not all(isinstance(s, str) and _SLUG.match(s) for s in sections):
        raise ValueError("'sections' must be a list of section slugs")
    if "status" in fields and fields["status"] not in STATUSES:
        raise ValueError(f"status '{fields['status']}' must be one of {', '.join(STATUSES)}")
    if fields.get("since"):
        dt.date.fromisoformat(fields["since"][:10])  # ValueError names the date
    try:
        if "email" in fields:
            check_email(fields["email"])
        if "name" in fields:
            check_name(fields["name"])
    except SubscriberError as exc:
        raise ValueError(exc.message) from None


def _change(record: object) -> Change:
    """The change a parsed line holds, or ValueError saying why it is not one."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    seq, key, op, fields = (record.get(name) for name in ("seq", "key", "op", "fields"))
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("'seq' must be a positive whole number")
    if not isinstance(key, str) or not key.strip() or any(ord(ch) < 32 for ch in key):
        raise ValueError("'key' must be an address")
    if op not in OPS:
        raise ValueError(f"'op' must be one of {', '.join(OPS)}")
    if not isinstance(fields, dict):
        raise ValueError("'fields' must be an object")
    _check_fields(op, fields)
    if "email" in fields and fields["email"].lower() != key:
        raise ValueError("'email' is not the address of 'key'")
    return Change(seq, key, op, fields)


def _header(record: dict[str, Any]) -> dict[str, Any]:
    folded, origin, keep, tmp = (record.get(name) for name in ("folded", "from", "keep", "tmp"))
    if not isinstance(folded, int) or isinstance(folded, bool):
        raise ValueError("'folded' must be a whole number")
    if origin is not None and not (isinstance(origin, list) and all(isinstance(n, int) for n in origin)):
        raise ValueError("'from' must be a list signature")
    if not isinstance(keep, list | None) or not all(isinstance(n, int) for n in keep or ()):
        raise ValueError("'keep' must be a list of change numbers")
    if tmp is not None and (not isinstance(tmp, str) or "/" in tmp):
        raise ValueError("'tmp' must be a file name")
    return record


def parse_journal(data: bytes, path: Path, numbers: Iterable[int] | None = None) -> Journal:
    """The journal in ``data`` (the bytes of ``path``'s journal); ``numbers``: only these lines (from 1)."""
    lines = data.split(b"\n")
    torn = bool(data) and not data.endswith(b"\n")
    complete = len(lines) - 1  # the piece after the last line break is never a whole line
    target = journal_path(path)
    changes: list[Change] = []
    header: dict[str, Any] = {}
    problems: list[Problem] = []
    rejected: list[bytes] = []
    for number in range(1, complete + 1) if numbers is None else numbers:
        raw = lines[number - 1]
        if number > complete or not raw.strip():
            continue  # a torn last line: that change was never acknowledged
        try:
            record = json.loads(raw)
            if isinstance(record, dict) and "folded" in record and number == 1:
                header = _header(record)
            else:
                changes.append(_change(record))
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) else str(exc)
            problems.append(Problem(number, f"not a change ({reason}); this line is never applied", target))
            rejected.append(raw + b"\n")
    tmp = header.get("tmp")
    renamed = None if not isinstance(tmp, str) else not path.with_name(tmp).exists()
    origin = header.get("from")
    return Journal(
        tuple(changes),
        int(header.get("folded", 0)),
        tuple(origin) if isinstance(origin, list) else None,  # type: ignore[arg-type]
        bool(header),
        frozenset(header.get("keep") or ()),
        torn,
        renamed,
        tuple(problems),
        tuple(rejected),
    )


def _read(path: Path) -> bytes:
    try:
        return journal_path(path).read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise SubscriberUnavailable(
            f"cannot read the change journal: {exc.strerror or exc}", path=journal_path(path)
        ) from None


def read_journal(path: Path, keys: Collection[str] | None = None) -> Journal:
    """The journal of the list at ``path`` (empty when there is none); with ``keys``, their changes only.

    Looking up addresses parses only the header and the lines that name them: a
    change costs a scan of the journal's bytes, not a parse of every line.
    """
    data = _read(path)
    if keys is None:
        return parse_journal(data, path)
    numbers = {1} if data.startswith(b'{"folded"') else set()
    for key in keys:
        needle = b'"key": ' + json.dumps(key, ensure_ascii=False).encode("utf-8")
        start = data.find(needle)
        while start >= 0:
            numbers.add(data.count(b"\n", 0, start) + 1)
            start = data.find(needle, data.find(b"\n", start) + 1 or len(data))
    return parse_journal(data, path, sorted(numbers))


def _next_seq(fd: int) -> tuple[int, bool]:
    """The number of the next change and whether the last line is torn, from the ends of the journal.

    Above the last change's number and the fold header's ``folded`` (the header is
    the first line; a change it keeps may be older than it).
    """
    size = os.fstat(fd).st_size
    if not size:
        return 1, False
    head = os.pread(fd, min(size, 4096), 0)
    folded = 0
    if head.startswith(b'{"folded"'):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            found = json.loads(head.split(b"\n", 1)[0]).get("folded")
            folded = found if isinstance(found, int) else 0
    data = os.pread(fd, min(size, TAIL), max(0, size - TAIL))
    torn = not data.endswith(b"\n")
    whole = size <= TAIL
    lines = data.split(b"\n")
    for raw in reversed(lines[1:-1] if not whole else lines[:-1]):  # the tail's first piece may be cut
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError):
            record = json.loads(raw)
            if isinstance(record.get("seq"), int) and "folded" not in record:
                return max(record["seq"], folded) + 1, torn
    if whole:
        return folded + 1, torn
    return parse_journal(os.pread(fd, size, 0), Path("journal")).last + 1, torn


def _lock(path: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(path.with_name(f".{path.name}.journal.lock"), what="the change journal", wait=LOCK_WAIT)


def append_changes(path: Path, items: Sequence[tuple[str, str, dict[str, Any]]]) -> list[Change]:
    """Append changes (key, op, fields) with one fsync: once this returns, they survive a crash."""
    target = journal_path(path)
    made: list[Change] = []
    if not items:
        return made
    try:
        with _lock(path):
            created = not target.exists()
            fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            size = os.fstat(fd).st_size
            try:
                seq, torn = _next_seq(fd)
                made = [Change(seq + n, key, op, fields) for n, (key, op, fields) in enumerate(items)]
                data = b"".join(c.line() for c in made)
                if torn:  # a line cut short by a crash was never acknowledged: it goes
                    tail = os.pread(fd, min(size, TAIL), size - min(size, TAIL))
                    cut = tail.rfind(b"\n")
                    if cut >= 0 or size <= TAIL:
                        os.ftruncate(fd, size - len(tail) + cut + 1)
                    else:
                        data = b"\n" + data
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:  # not durable, so not made: no reader may see it
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            finally:
                os.close(fd)
            if created:
                fsync_directory(target.parent)
    except OSError as exc:
        raise SubscriberUnavailable(
            f"cannot record the change: {exc.strerror or exc}; nothing was changed, try again", path=target
        ) from None
    return made


def append_change(path: Path, key: str, op: str, fields: dict[str, Any]) -> Change:
    """Append one change and fsync it: once this returns, the change survives a crash."""
    return append_changes(path, [(key, op, fields)])[0]


def _write_journal(
    path: Path, header: dict[str, Any] | None, journal: Journal, changes: Iterable[Change]
) -> None:
    lines = [json.dumps(header, sort_keys=True).encode() + b"\n"] if header else []
    lines += journal.rejected  # kept, and reported, until a person removes them
    lines += [c.line() for c in sorted(changes, key=lambda c: c.seq)]
    target = journal_path(path)
    if not lines and not target.exists():
        return
    atomic_write(target, b"".join(lines), mode=0o640)  # a failure is a StateError naming the journal


def mark_fold(
    path: Path,
    folded: int,
    origin: Signature,
    keep: Collection[int],
    base: Sequence[Change],
    tmp: str | None = None,
) -> None:
    """Before the folded list (temporary file ``tmp``) is renamed into place: say which changes it holds."""
    with _lock(path):
        current = read_journal(path)
        later = [c for c in current.changes if c.seq > folded]
        origin_list = list(origin) if origin else None
        header = {"folded": folded, "from": origin_list, "keep": sorted(keep), "tmp": tmp}
        _write_journal(path, header, current, [*base, *later])


def unmark_fold(path: Path) -> None:
    """The fold's new list will not take the list's place: every change in the journal is pending again."""
    with _lock(path):
        current = read_journal(path)
        if current.folding:
            _write_journal(path, None, current, current.changes)


def settle_journal(path: Path, folded: int, keep: Collection[int]) -> None:
    """After the folded list is in place: drop the changes it holds."""
    with _lock(path):
        current = read_journal(path)
        if not current.changes and not current.folding:
            return
        _write_journal(path, None, current, [c for c in current.changes if c.seq > folded or c.seq in keep])


def erased_digest(key: str) -> str:
    """How the erased file names an address: a digest, so the address itself is gone."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def record_erased(path: Path, keys: Iterable[str]) -> None:
    """Note erased addresses (fsynced) before the fold drops their lines from the list."""
    lines = "".join(erased_digest(key) + "\n" for key in keys).encode()
    if not lines:
        return
    target = erased_path(path)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, lines)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_erased(path: Path) -> frozenset[str]:
    """The digests of every address erased from the list (see :func:`erased_digest`)."""
    try:
        return frozenset(erased_path(path).read_text(encoding="ascii").split())
    except (OSError, UnicodeDecodeError):
        return frozenset()
