"""The subscriber list: a CSV file people edit by hand, changed safely by digest.

Header: ``email,name,sections,status,since``. ``status`` is active, unsubscribed
or bounced (empty means active); ``sections`` is ``;``-separated feed slugs
(empty means all). Reading reports every bad line with its number and skips only
that line; a quote left open also reports each line it swallowed that starts
with an address. A change (:func:`set_status` and friends) finds its address
through the list's index and appends one fsynced line to the change journal
(:mod:`digest.subscribers.journal`); every reader applies the journal on top of the
file. :func:`fold_journal` writes it into the file through one streaming rewrite
(:func:`_rewrite`): under a lock, line by line into a temporary file that is
fsynced and renamed over the list, keeping every line it did not change byte for
byte, including the ones it could not parse, in their place.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from digest.errors import SubscriberError
from digest.fsutil import atomic_write, file_lock, write_error
from digest.subscribers.journal import (
    STALE,
    Change,
    IndexBuilder,
    IndexRow,
    Journal,
    SubscriberUnavailable,
    append_change,
    index_unclosed,
    lookup_index,
    mark_fold,
    read_journal,
    settle_journal,
)
from digest.subscribers.keys import KeySet

__all__ = [
    "HEADER",
    "STATUSES",
    "ImportReport",
    "Problem",
    "Subscriber",
    "SubscriberList",
    "SubscriberUnavailable",
    "add_subscriber",
    "address_key",
    "check_email",
    "export_csv",
    "find_subscriber",
    "fold_journal",
    "import_subscribers",
    "iter_subscribers",
    "journal_statuses",
    "list_signature",
    "parse_sections",
    "read_statuses",
    "read_subscribers",
    "remove_subscriber",
    "scan_subscribers",
    "set_sections",
    "set_status",
    "set_statuses",
    "warm_index",
]

HEADER = ("email", "name", "sections", "status", "since")
STATUSES = ("active", "unsubscribed", "bounced")
MAX_NAME = 100
LOCK_WAIT = 30.0
REWRITE_ATTEMPTS = 5


KEEP = object()  # what an edit returns for a line it leaves alone


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str
    sections: frozenset[str]
    status: str
    since: str
    line: int = 0

    @property
    def key(self) -> str:
        return self.email.lower()

    @property
    def active(self) -> bool:
        return self.status == "active"

    def wants(self) -> frozenset[str] | None:
        """The sections to mail, or None for all."""
        return self.sections or None


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str

    def format(self, path: Path) -> str:
        return f"{path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Row:
    """One record as read (its line ending included), and the subscriber when it parsed.

    ``key`` is the record's address when that much could be read, even if another
    field is bad: such an address is on the list, if not mailable, and must not be
    added a second time.
    """

    text: str
    subscriber: Subscriber | None
    key: str | None = None


@dataclass(frozen=True)
class SubscriberList:
    """A whole list read into memory (for listing and export; changes stream instead)."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[_Row, ...]
    problems: tuple[Problem, ...]

    @property
    def subscribers(self) -> list[Subscriber]:
        return [row.subscriber for row in self.rows if row.subscriber is not None]

    def find(self, email: str) -> Subscriber | None:
        key = address_key(email)
        return next((s for s in self.subscribers if s.key == key), None)


# The plain addresses email-validator accepts, recognised without calling it: a
# dot-atom local part and a domain of letter-digit-hyphen labels whose top level
# starts and ends with a letter. Anything else (and special-use domains) gets the full check.
_PLAIN_ADDRESS = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?)$"
)


def _plain_address(address: str) -> str | None:
    """The normalised form of a plain address, or None when it needs email-validator's full check."""
    match = _PLAIN_ADDRESS.match(address)
    if not match or len(address) > 254 or len(match["local"]) > 64 or len(match["domain"]) > 253:
        return None
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    domain = match["domain"].lower()
    if "--" in domain:  # IDNA rules apply to such labels: leave them to the full check
        return None
    if any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return f"{match['local']}@{domain}"


def check_email(address: str) -> str:
    """The address as it should be stored, or :class:`SubscriberError` saying what is wrong.

    The decision is email-validator's syntax check (no DNS); the common plain
    addresses take a fast path that accepts exactly what it would accept.
    """
    address = address.strip()
    if any(ch in address for ch in "\r\n\x00,;<>"):
        raise SubscriberError(f"invalid address {address!r}: it contains a separator or line break")
    plain = _plain_address(address)
    if plain is not None:
        return plain
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {address!r}: {exc}") from None
    return valid.ascii_email or valid.normalized


def address_key(email: str) -> str:
    """How the list knows an address: normalised and in lower case (as typed, lower-cased, when invalid)."""
    try:
        return check_email(email).lower()
    except SubscriberError:
        return email.strip().lower()


def _check_name(name: str) -> str:
    name = name.strip()
    if any(ord(ch) < 32 for ch in name):
        raise SubscriberError("the name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"the name is longer than {MAX_NAME} characters")
    return name


def read_subscribers(path: Path, known_sections: Collection[str]) -> SubscriberList:
    """Read the whole list, the journal applied; a missing file is an empty list."""
    scan = _Scan(path, known_sections)
    rows, problems = [], []
    for row, problem in _overlaid(scan):
        rows.append(row)
        if problem:
            problems.append(problem)
    return SubscriberList(path, scan.header, tuple(rows), tuple(problems))


def iter_subscribers(
    path: Path, known_sections: Collection[str], keep: Callable[[str], bool] | None = None
) -> Iterator[Subscriber]:
    """Stream the valid subscribers (the journal applied) without holding the whole list.

    ``keep`` sees each line's address in lower case (normalised when it is valid,
    so two spellings of one address look alike) and can skip the rest of the
    line's checks: a send split over processes takes only its share.
    """
    for row, _ in _overlaid(_Scan(path, known_sections, keep)):
        if row.subscriber is not None:
            yield row.subscriber


def find_subscriber(path: Path, known_sections: Collection[str], email: str) -> Subscriber | None:
    """One subscriber by address (from the index, the journal applied); None when not listed or unreadable."""
    return _lookup(path, known_sections, address_key(email)).subscriber


def scan_subscribers(
    path: Path, known_sections: Collection[str]
) -> Iterator[tuple[Subscriber | None, Problem | None]]:
    """Stream every line as (subscriber, problem): one of them set, or neither for a blank line."""
    for row, problem in _overlaid(_Scan(path, known_sections)):
        yield row.subscriber, problem


def read_statuses(path: Path, known_sections: Collection[str]) -> dict[str, str] | None:
    """Every readable address's status in the file (not the journal), or None when it cannot be read.

    A send trusts a status that stops a mail only from such a read: the file is
    there with its header and did not change while it was read. A last line
    without its line break is left out: it may be cut short by an editor
    part-way through saving (``unsub`` of ``unsubscribed``, or an address cut in two).
    """
    try:
        with path.open("rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
            after = os.fstat(handle.fileno())
        current = os.stat(path)
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    stamps = {(st.st_ino, st.st_size, st.st_mtime_ns) for st in (before, after, current)}
    if len(stamps) != 1 or "\n" not in text:
        return None
    try:
        rows = list(_Scan(path, known_sections, text=text[: text.rindex("\n") + 1]))
    except SubscriberError:
        return None
    return {row.key: row.subscriber.status for row, _ in rows if row.subscriber is not None and row.key}


def journal_statuses(path: Path) -> dict[str, str]:
    """The statuses the journal's pending changes give (``erased`` for an erased record)."""
    statuses = {}
    for change in read_journal(path).pending(list_signature(path)):
        if change.op == "erase":
            statuses[change.key] = "erased"
        elif "status" in change.fields:
            statuses[change.key] = str(change.fields["status"])
    return statuses


class _Overlay:
    """The pending changes of the journal, by address, applied to records as they are read."""

    def __init__(self, changes: Iterable[Change]):
        self.changes: dict[str, list[Change]] = {}
        for change in changes:
            self.changes.setdefault(change.key, []).append(change)

    def __contains__(self, key: object) -> bool:
        return key in self.changes

    def apply(self, key: str, base: Subscriber | None) -> Subscriber | None:
        current = base
        for change in self.changes.get(key, ()):
            fields = {name: change.fields[name] for name in HEADER if name in change.fields}
            fields["sections"] = frozenset(fields.get("sections", current.sections if current else ()))
            if change.op == "erase":
                current = None
            elif current is not None:
                current = replace(current, **fields)
            elif change.op == "add" and fields.get("email"):
                current = Subscriber(**{"name": "", "status": "active", "since": "", **fields})
        return current

    def seqs(self, key: str) -> set[int]:
        return {c.seq for c in self.changes.get(key, ())}


def _overlaid(scan: _Scan) -> Iterator[tuple[_Row, Problem | None]]:
    """The scan's rows with the journal's pending changes applied, then the addresses it adds."""
    overlay = _Overlay(read_journal(scan.path).pending(list_signature(scan.path)))
    seen: set[str] = set()  # only the addresses the journal changes: small
    for row, problem in scan:
        if row.key is not None and row.key in overlay:
            seen.add(row.key)
        if row.subscriber is not None and row.key in overlay:
            row = replace(row, subscriber=overlay.apply(row.key, row.subscriber))
        yield row, problem
    for key in overlay.changes:
        if key in seen or (scan.keep is not None and not scan.keep(key)):
            continue
        added = overlay.apply(key, None)
        if added is not None:
            yield _Row("", added, key), None


class _Lines:
    """The file's physical lines for csv.reader, remembering the raw text of the record being read."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.taken: list[str] = []
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.number += 1
        self.taken.append(line)
        return line

    def take_lines(self) -> list[str]:
        taken, self.taken = self.taken, []
        return taken


class _Scan:
    """Iterates (row, problem) over the records after the header, as csv reads them (a quoted
    field may span lines); ``header`` is known once iteration has started."""

    def __init__(
        self,
        path: Path,
        known: Collection[str],
        keep: Callable[[str], bool] | None = None,
        text: str | None = None,
    ):
        self.path = path
        self.known = known
        self.keep = keep
        self.text = text  # the list already read (a send's check of the statuses), else read from path
        self.header: tuple[str, ...] = HEADER
        self.header_text = ""
        self.newline = "\n"
        self.unclosed: int | None = None  # a record whose quote is left open runs to the end of the file

    def __iter__(self) -> Iterator[tuple[_Row, Problem | None]]:
        if self.text is not None:
            yield from self._records(io.StringIO(self.text, newline=""))
            return
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SubscriberUnavailable(
                f"cannot read the subscriber list: {exc.strerror or exc}", path=self.path
            ) from None
        with handle:
            try:
                yield from self._records(handle)
            except UnicodeDecodeError:
                raise SubscriberUnavailable(
                    "the subscriber list is not UTF-8; save it as UTF-8", path=self.path
                ) from None

    def _records(self, handle: Any) -> Iterator[tuple[_Row, Problem | None]]:
        seen = KeySet()  # digests, not strings: flat memory however long the list
        first = next(handle, None)
        if first is None:
            return
        self.header_text = first
        self.newline = "\r\n" if first.endswith("\r\n") else "\n"
        self.header = _header(first.rstrip("\r\n"), self.path)
        lines = _Lines(handle)
        reader = csv.reader(lines, strict=True)
        while True:
            start = lines.number + 2
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    self.unclosed = start
                taken = lines.take_lines()
                key = self._line_key(taken[0]) if taken else None
                yield _Row("".join(taken), None, key), Problem(start, f"not a CSV record: {exc}")
                yield from self._swallowed(taken[1:], start)
                continue
            taken = lines.take_lines()
            yield self._row("".join(taken), fields, start, lines.number + 1, seen)
            yield from self._swallowed(taken[1:], start)

    def _swallowed(self, rest: list[str], start: int) -> Iterator[tuple[_Row, Problem | None]]:
        """The lines inside a record that look like records of their own: a quote left open swallowed them."""
        for offset, raw in enumerate(rest, 1):
            key = self._line_key(raw)
            if key is not None:
                yield (
                    _Row("", None, key),
                    Problem(
                        start + offset,
                        f"{key} is inside the record that starts on line {start} (a quote left open there?); "
                        "this line is not read until that is fixed",
                    ),
                )

    def _line_key(self, raw: str) -> str | None:
        """The address at the start of one physical line, read on its own, if it is one."""
        try:
            fields = next(csv.reader([raw.rstrip("\r\n")]), [])
        except csv.Error:
            return None
        email = dict(zip(self.header, fields, strict=False)).get("email", "").strip()
        if "@" not in email:
            return None
        try:
            return check_email(email).lower()
        except SubscriberError:
            return None

    def _row(
        self, text: str, fields: list[str], number: int, last: int, seen: KeySet
    ) -> tuple[_Row, Problem | None]:
        if not any(field.strip() for field in fields):
            return _Row(text, None), None
        values = dict(zip(self.header, (f.strip() for f in fields), strict=False))
        email: str | SubscriberError
        try:
            email = check_email(values.get("email", ""))  # once per line: the slow part of reading
        except SubscriberError as exc:
            email = exc
        key = email.lower() if isinstance(email, str) else None
        if self.keep is not None and not self.keep(key or values.get("email", "").lower()):
            return _Row(text, None), None
        try:
            if last > number:
                raise SubscriberError(f"the record runs over lines {number}-{last} (a quote left open?)")
            if len(fields) > len(self.header):
                raise SubscriberError(f"{len(fields)} columns, but the header has {len(self.header)}")
            if isinstance(email, SubscriberError):
                raise email
            subscriber = _parse(email, values, number, self.known)
        except SubscriberError as exc:
            return _Row(text, None, key), Problem(number, exc.message)
        if subscriber.key in seen:
            return _Row(text, None), Problem(
                number, f"{subscriber.email} is listed twice; this line is skipped"
            )
        seen.add(subscriber.key)
        return _Row(text, subscriber, subscriber.key), None


def _header(text: str, path: Path) -> tuple[str, ...]:
    columns = tuple(c.strip().lower() for c in next(csv.reader([text])))
    if "email" not in columns:
        raise SubscriberError(f"the first line must be the header {','.join(HEADER)}", path=path, line=1)
    return columns


def _parse(email: str, values: dict[str, str], number: int, known: Collection[str]) -> Subscriber:
    """The subscriber on one line, its address already checked; the other fields are checked here."""
    sections = _known_sections(values.get("sections", "").split(";"), known)
    status = values.get("status", "").lower() or "active"
    if status not in STATUSES:
        raise SubscriberError(f"status '{status}' must be one of {', '.join(STATUSES)}")
    since = values.get("since", "")
    if since:
        try:
            dt.date.fromisoformat(since[:10])
        except ValueError:
            raise SubscriberError(f"since '{since}' is not a date (YYYY-MM-DD)") from None
    return Subscriber(email, _check_name(values.get("name", "")), sections, status, since, number)


def _rewrite(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None = None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None = None,
) -> bool:
    """Fold the journal into the list, with ``edit`` and ``append``, under its lock; True if it changed.

    ``edit`` gets each subscriber and returns ``KEEP``, a changed ``Subscriber``,
    or None to erase the record; ``append`` gets every address on the list (with
    the line it is on, negative when that line cannot be read) and returns the
    subscribers to add at the end. Records that do not parse, blank lines and
    records left alone are written back exactly as they were, line endings
    included. If someone edits the file meanwhile (an editor does not take the
    lock), the rewrite starts again from their version. The index is rebuilt
    for the new list before it is renamed into place.
    """
    with file_lock(path.with_name(f".{path.name}.lock"), what="the subscriber list", wait=LOCK_WAIT):
        for _ in range(REWRITE_ATTEMPTS):
            changed = _attempt(path, known, edit, append)
            if changed is not None:
                return changed
    raise SubscriberUnavailable("the list keeps changing while digest rewrites it; try again", path=path)


def _attempt(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None,
) -> bool | None:
    """One try at the rewrite (the lock held): whether the list changed, None if a hand edit came between."""
    before = list_signature(path)
    journal = read_journal(path)
    changes = journal.pending(before)
    stale = before is not None and lookup_index(path, before, "") is STALE
    if not (stale or changes or edit or append):  # nothing to write, and the index describes the list
        if journal.changes:
            settle_journal(path, journal.last, ())  # what is left was folded by a fold cut short
        return False
    with IndexBuilder(path) as index:
        result = _rewritten(path, known, edit, append, changes, index)
        try:
            changed = _write_back(path, before, journal, changes, index, result, stale)
        finally:
            result.close()
    if changed is not None and journal.changes:
        settle_journal(path, journal.last, result.kept)
    return changed


def _write_back(
    path: Path,
    before: tuple[int, int, int] | None,
    journal: Journal,
    changes: Sequence[Change],
    index: IndexBuilder,
    result: _Rewritten,
    stale: bool,
) -> bool | None:
    """Put the rewritten list and its index in place; False if nothing changed, None if a hand edit came."""
    if list_signature(path) != before:
        return None  # changed under us by a hand edit: do it again on the new text
    if result.write is None:
        if stale:
            index.finish(before)
        return False

    def ready(signature: tuple[int, int, int]) -> None:
        index.finish(signature)
        if changes:
            mark_fold(path, journal.last, before, result.kept, changes)

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    atomic_write(path, result.write, mode=mode, before_replace=lambda tmp: ready(_signature_of(tmp)))
    return True


def _signature_of(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _Rewritten:
    """A rewrite's result: what writes the new text (None if unchanged), the changes it could not apply."""

    write: Callable[[BinaryIO], None] | None
    kept: set[int]
    found: IndexRow | None = None  # the record of the address asked for
    close: Callable[[], None] = lambda: None  # frees the records put aside for ``write``


class _Writer:
    """The new list being put together, record by record, with the index of where each address is.

    Memory stays flat in the size of the list: the records go to a temporary
    file beside it as they come (copied into the new list after the header, which
    is known only at the end), and which addresses were seen is a set of digests.
    """

    def __init__(
        self,
        scan: _Scan,
        index: IndexBuilder | None,
        want: str | None,
        *,
        lean: bool = False,
        keys: bool = False,
    ):
        self.scan = scan
        self.index = index
        self.want = want
        self.found: IndexRow | None = None
        self.lean = lean  # only the index is rebuilt: nothing is written back
        self._spool: BinaryIO | None = None
        self._open_line = False  # the last record written has no line ending (the file's last line)
        self.seen = KeySet()
        # keys: every address with its line (negative when unreadable), for ``append`` (an import)
        self.keys: dict[str, int] | None = {} if keys else None
        self.line = 2  # the line the next record starts on
        self.shift = 0  # new line minus old line, for the lines inside the last record
        self.changed = self.formatted = False

    def keep(self, row: _Row, problem: Problem | None) -> None:
        old = problem.line if problem else (row.subscriber.line if row.subscriber else 0)
        if row.text:
            self.shift = self.line - old if old else self.shift
        line = self.line if row.text else old + self.shift
        self._note(row.key, row.subscriber, problem, line)
        if not self.lean:
            self._emit(row.text)
        self.line += row.text.count("\n")

    def put(self, subscriber: Subscriber, original: str = "") -> None:
        assert not self.lean, "a lean rewrite writes nothing back"
        header = self.scan.header
        if not original and self._open_line:
            self._emit(self.scan.newline)
        text = _format_row(_full(header), subscriber, original, header) + self.scan.newline
        self._note(subscriber.key, replace(subscriber, line=self.line), None, self.line)
        self._emit(text)
        self.line += 1
        self.changed = self.formatted = True

    def drop(self, key: str) -> None:
        """A record erased: the list changed, and the address counts as seen (it is not added back)."""
        self.changed = True
        self._seen(key, 0)

    def listed(self, key: str) -> bool:
        return key in self.seen

    def _emit(self, text: str) -> None:
        if not text:
            return
        try:
            if self._spool is None:  # closed by close(), once the new list is written from it
                self._spool = tempfile.TemporaryFile(dir=self.scan.path.parent, prefix=".digest-list-")  # noqa: SIM115
            self._spool.write(text.encode("utf-8"))
        except OSError as exc:  # a full disk, a read-only folder: the list is left as it was
            raise write_error(self.scan.path, exc) from None
        self._open_line = not text.endswith("\n")

    def _seen(self, key: str, line: int) -> bool:
        """Note ``key``; False if it was seen before (an address's first record is the one that counts)."""
        first = key not in self.seen
        if first:
            self.seen.add(key)
            if self.keys is not None:
                self.keys[key] = line
        return first

    def _note(
        self, key: str | None, subscriber: Subscriber | None, problem: Problem | None, line: int
    ) -> None:
        if key is None or not self._seen(key, -line if problem is not None else line):
            return
        if self.index is None and key != self.want:
            return
        if subscriber is None or problem is not None:
            row = IndexRow(key, line, False)
        else:
            sections = ";".join(sorted(subscriber.sections))
            fields = (subscriber.email, subscriber.name, sections, subscriber.status, subscriber.since)
            row = IndexRow(key, line, True, *fields)
        if self.index is not None:
            self.index.add(row)
        if key == self.want:
            self.found = row

    def write(self, handle: BinaryIO) -> None:
        """The new list: its header, then the records as they were put together."""
        scan = self.scan
        header = scan.header_text or ",".join(HEADER) + scan.newline
        if self.formatted and _full(scan.header) != scan.header:
            original = next(csv.reader([header.rstrip("\r\n")]))
            added = [column for column in HEADER if column not in scan.header]
            header = _csv_line([*original, *added]) + scan.newline
        handle.write(header.encode("utf-8"))
        if self._spool is not None:
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, handle, 1 << 20)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _rewritten(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None,
    changes: Sequence[Change] = (),
    index: IndexBuilder | None = None,
    want: str | None = None,
) -> _Rewritten:
    scan = _Scan(path, known)
    overlay = _Overlay(changes)
    writer = _Writer(scan, index, want, lean=not (changes or edit or append), keys=append is not None)
    kept: set[int] = set()
    for row, problem in scan:
        subscriber = row.subscriber
        if subscriber is None:
            if row.key in overlay:
                kept |= overlay.seqs(row.key)  # its record cannot be read: wait until it is fixed
            writer.keep(row, problem)
            continue
        result: object = subscriber
        if subscriber.key in overlay:
            result = overlay.apply(subscriber.key, subscriber)
        if result is not None and edit is not None:
            chosen = edit(result)  # type: ignore[arg-type]
            result = result if chosen is KEEP else chosen
        if result is None:
            writer.drop(subscriber.key)
        elif result == subscriber:
            writer.keep(row, problem)
        else:
            assert isinstance(result, Subscriber)
            writer.put(result, row.text)
    for key in overlay.changes:
        if not writer.listed(key) and (added := overlay.apply(key, None)) is not None:
            if scan.unclosed is not None:  # a line added now would be swallowed: keep it pending
                kept |= overlay.seqs(key)
                continue
            writer.put(added)
    for subscriber in append(writer.keys or {}) if append is not None else []:
        if scan.unclosed is not None:
            raise _swallowing(path, scan.unclosed)
        writer.put(subscriber)
    if index is not None:
        index.unclosed = scan.unclosed
    return _Rewritten(writer.write if writer.changed else None, kept, writer.found, writer.close)


def _full(header: tuple[str, ...]) -> tuple[str, ...]:
    """The header with the standard columns it lacks added at the end (a hand-made list may lack some)."""
    return header + tuple(column for column in HEADER if column not in header)


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def _format_row(
    header: tuple[str, ...], subscriber: Subscriber, original: str, original_header: tuple[str, ...]
) -> str:
    """One CSV record for ``subscriber``, keeping the values of columns digest does not know."""
    old = next(csv.reader([original.rstrip("\r\n")])) if original.strip() else []
    values = dict(zip(original_header, old, strict=False))
    values.update(
        email=subscriber.email,
        name=subscriber.name,
        sections=";".join(sorted(subscriber.sections)),
        status=subscriber.status,
        since=subscriber.since,
    )
    return _csv_line([values.get(column, "") for column in header])


def list_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the list: changes whenever it is rewritten."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# -- the operations behind ``digest subscribers`` and the web endpoints ------------------------


def parse_sections(text: str, known: Collection[str]) -> frozenset[str]:
    """Sections a person typed (``;`` or ``,`` between slugs), each one a known slug."""
    return _known_sections(text.replace(",", ";").split(";"), known)


def _known_sections(slugs: Iterable[str], known: Collection[str]) -> frozenset[str]:
    sections = frozenset(s.strip() for s in slugs if s.strip())
    unknown = sorted(sections - set(known))
    if unknown:
        raise SubscriberError(f"unknown section '{unknown[0]}' (known: {', '.join(sorted(known))})")
    return sections


@dataclass(frozen=True)
class _Found:
    """What the list says about one address: its subscriber, or the line of its unreadable record."""

    subscriber: Subscriber | None
    unreadable: int | None = None
    listed: bool = True  # False: there is no list file at all


def _lookup(path: Path, known: Collection[str], key: str) -> _Found:
    """One address's record from the index (rebuilt first if the list changed), the journal applied."""
    signature = list_signature(path)
    row = lookup_index(path, signature, key) if signature is not None else None
    if row is STALE:
        with file_lock(path.with_name(f".{path.name}.lock"), what="the subscriber list", wait=LOCK_WAIT):
            signature = list_signature(path)  # a fold may have just put a new list and index in place
            row = lookup_index(path, signature, key)
            if row is STALE:
                with IndexBuilder(path) as index:
                    row = _rewritten(path, known, None, None, (), index, want=key).found
                    if list_signature(path) == signature:  # not edited by hand while it was read
                        index.finish(signature)
    assert row is None or isinstance(row, IndexRow)
    changes = [c for c in read_journal(path).pending(signature) if c.key == key]
    if row is not None and not row.readable:
        return _Found(None, row.line)
    base = None
    if row is not None:
        sections = frozenset(s for s in row.sections.split(";") if s)
        base = Subscriber(row.email, row.name, sections, row.status, row.since, row.line)
    return _Found(_Overlay(changes).apply(key, base), listed=signature is not None)


def _swallowing(path: Path, line: int) -> SubscriberUnavailable:
    return SubscriberUnavailable(
        "the record on this line has a quote left open to the end of the list, so a line added "
        "after it could not be read; fix it first (nothing was changed)",
        path=path,
        line=line,
    )


def _readable(path: Path, found: _Found, address: str) -> Subscriber | None:
    """The subscriber found, or SubscriberUnavailable when the record is on a line that cannot be read."""
    if found.unreadable is not None:
        raise SubscriberUnavailable(
            f"{address} is on a line that cannot be read; fix it first (nothing was changed)",
            path=path,
            line=found.unreadable,
        )
    return found.subscriber


def _record(path: Path, key: str, op: str, **fields: Any) -> None:
    if "sections" in fields:
        fields["sections"] = sorted(fields["sections"])
    append_change(path, key, op, fields)


def add_subscriber(
    path: Path,
    known: Collection[str],
    email: str,
    *,
    name: str = "",
    sections: frozenset[str] = frozenset(),
    today: dt.date,
) -> Subscriber:
    """Add an address, or re-activate one that left (keeping its name and sections unless new ones are given).

    An address already active is an error, and so is one whose line cannot be read:
    that line must be fixed first, not shadowed by a second one. The change goes
    to the journal (fsynced) and is folded into the list later.
    """
    address = check_email(email)
    new = Subscriber(address, _check_name(name), frozenset(sections), "active", today.isoformat())
    current = _readable(path, _lookup(path, known, new.key), address)
    if current is not None and current.active:
        raise SubscriberError(f"{address} is already subscribed", path=path, line=current.line or None)
    if current is not None:
        name, chosen = new.name or current.name, new.sections or current.sections
        new = replace(current, status="active", since=new.since, name=name, sections=chosen)
    elif (unclosed := index_unclosed(path, list_signature(path))) is not None:
        raise _swallowing(path, unclosed)
    _record(
        path,
        new.key,
        "add",
        email=new.email,
        name=new.name,
        sections=new.sections,
        status="active",
        since=new.since,
    )
    return new


def _change(path: Path, known: Collection[str], email: str, **fields: Any) -> Subscriber | None:
    """Give one address new field values; None when it is not on the list (nothing changes)."""
    key = address_key(email)
    found = _lookup(path, known, key)
    if not found.listed:
        raise SubscriberUnavailable(
            "the subscriber list is missing; nothing was changed, try again", path=path
        )
    current = _readable(path, found, email)
    if current is None:
        return None
    changed = replace(current, **fields)
    if changed != current:
        _record(path, key, "update", **fields)
    return changed


def set_statuses(path: Path, known: Collection[str], statuses: Mapping[str, str]) -> list[Subscriber]:
    """Give each listed address (lower case) its new status; returns the subscribers changed."""
    changed: list[Subscriber] = []
    for key, status in statuses.items():
        current = _lookup(path, known, key).subscriber
        if current is not None and current.status != status:
            _record(path, key, "update", status=status)
            changed.append(replace(current, status=status))
    return changed


def set_status(path: Path, known: Collection[str], email: str, status: str) -> Subscriber | None:
    """Change one address's status; None when it is not on the list (nothing changes).

    Raises :class:`SubscriberUnavailable` when the list is missing or the address
    is on a line that cannot be read: the change could not be made, say "try again".
    """
    return _change(path, known, email, status=status)


def set_sections(
    path: Path, known: Collection[str], email: str, sections: frozenset[str]
) -> Subscriber | None:
    """Choose the sections one address gets; None when it is not on the list (nothing changes)."""
    return _change(path, known, email, sections=frozenset(sections))


def remove_subscriber(path: Path, known: Collection[str], email: str, *, purge: bool = False) -> Subscriber:
    """Unsubscribe an address (kept as ``unsubscribed``), or with ``purge`` erase its line."""
    key = address_key(email)
    current = _readable(path, _lookup(path, known, key), email)
    if current is None:
        raise SubscriberError(f"{email} is not on the list", path=path)
    if purge:
        _record(path, key, "erase")
    elif current.status != "unsubscribed":
        _record(path, key, "update", status="unsubscribed")
    return current


def warm_index(path: Path, known: Collection[str]) -> None:
    """Bring the lookup index up to date now (after a hand edit), so the next change finds its
    address at once instead of reading the whole list while a reader waits."""
    if path.is_file():
        _lookup(path, known, "")


def fold_journal(path: Path, known: Collection[str]) -> bool:
    """Write the journal's changes into the list (the locked rewrite), then empty it; True if it changed."""
    return _rewrite(path, known)


@dataclass(frozen=True)
class ImportReport:
    added: tuple[str, ...]
    present: tuple[str, ...]
    problems: tuple[Problem, ...]


def import_subscribers(path: Path, known: Collection[str], source: Path, *, today: dt.date) -> ImportReport:
    """Add every valid address of another CSV (with an ``email`` column); existing ones stay as they are."""
    if not source.is_file():
        raise SubscriberError("no such file to import", path=source)
    incoming = read_subscribers(source, known)
    added: list[str] = []
    present: list[str] = []

    def append(keys: dict[str, int]) -> list[Subscriber]:
        new = []
        for subscriber in incoming.subscribers:
            if subscriber.key in keys:  # on the list, even on a line that needs fixing
                present.append(subscriber.email)
                continue
            keys[subscriber.key] = 0
            new.append(replace(subscriber, since=subscriber.since or today.isoformat()))
            added.append(subscriber.email)
        return new

    _rewrite(path, known, None, append)
    return ImportReport(tuple(added), tuple(present), incoming.problems)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading ``'``."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def export_csv(subscribers: Collection[Subscriber], statuses: Collection[str] | None = None) -> str:
    """The subscribers as CSV for a spreadsheet: a cell that would run as a formula starts with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for s in subscribers:
        if statuses is None or s.status in statuses:
            cells = [s.email, s.name, ";".join(sorted(s.sections)), s.status, s.since]
            writer.writerow([_inert(cell) for cell in cells])
    return buffer.getvalue()
