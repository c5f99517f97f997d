"""The subscriber list's change journal, kept beside the list.

A change made by the web endpoints or ``digest subscribers`` (unsubscribe,
sections, subscribe, bounce) is one JSON line appended to
``.<list>.journal`` and fsynced before it is acknowledged: a few milliseconds
whatever the size of the list. Every reader of the list applies the journal on
top of the CSV; the start of a send and the ``digest subscribers`` commands fold
it into the CSV (the locked, byte-preserving rewrite) and empty it.

Every change holds absolute values (a status, a set of sections), so applying
one twice gives the same list. The fold is still careful never to apply one
twice: before it renames the new list into place it writes a header line to
the journal (``folded``: the last change it wrote into the list, ``from``: the
signature of the list it read). A reader that finds the list still as the fold
read it knows the rename did not happen and applies every change; otherwise the
changes up to ``folded`` are in the list already and are skipped (save those
``keep``: changes to a record the fold could not read, kept until it is fixed).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.fsutil import atomic_write, file_lock, fsync_directory

__all__ = [
    "Change",
    "Journal",
    "Signature",
    "SubscriberUnavailable",
    "append_change",
    "journal_path",
    "mark_fold",
    "read_journal",
    "settle_journal",
]

LOCK_WAIT = 10.0
Signature = tuple[int, int, int] | None


class SubscriberUnavailable(SubscriberError):
    """The list cannot be read or changed right now (missing, unreadable, the record on a broken line).

    Nothing was changed; the caller should say "try again" (the web answers 503).
    """


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal")


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
    folding: bool = False  # a fold wrote its header: ``origin`` is the list it read (None: no list)
    keep: frozenset[int] = frozenset()
    torn: bool = False  # the last line is incomplete (a crash mid-append)

    @property
    def last(self) -> int:
        return max((c.seq for c in self.changes), default=self.folded)

    def pending(self, signature: Signature) -> tuple[Change, ...]:
        """The changes the list with this signature does not hold yet."""
        if self.folding and signature == self.origin:
            return self.changes  # the fold never renamed its list into place
        return tuple(c for c in self.changes if c.seq > self.folded or c.seq in self.keep)


def read_journal(path: Path) -> Journal:
    """The journal of the list at ``path`` (empty when there is none)."""
    try:
        data = journal_path(path).read_bytes()
    except FileNotFoundError:
        return Journal()
    except OSError as exc:
        raise SubscriberUnavailable(
            f"cannot read the change journal: {exc.strerror or exc}", path=journal_path(path)
        ) from None
    changes: list[Change] = []
    header: dict[str, Any] = {}
    for raw in data.split(b"\n"):
        try:
            record = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            continue  # a torn last line: that change was never acknowledged
        if not isinstance(record, dict):
            continue
        if "folded" in record:
            header = record
        elif isinstance(record.get("seq"), int) and isinstance(record.get("fields"), dict):
            changes.append(Change(record["seq"], str(record["key"]), str(record["op"]), record["fields"]))
    origin = header.get("from")
    return Journal(
        tuple(changes),
        int(header.get("folded", 0)),
        tuple(origin) if isinstance(origin, list) else None,  # type: ignore[arg-type]
        bool(header),
        frozenset(header.get("keep", ())),
        bool(data) and not data.endswith(b"\n"),
    )


def _lock(path: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(path.with_name(f".{path.name}.journal.lock"), what="the change journal", wait=LOCK_WAIT)


def append_change(path: Path, key: str, op: str, fields: dict[str, Any]) -> Change:
    """Append one change and fsync it: once this returns, the change survives a crash."""
    target = journal_path(path)
    try:
        with _lock(path):
            journal = read_journal(path)
            change = Change(journal.last + 1, key, op, fields)
            created = not target.exists()
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            size = os.fstat(fd).st_size
            try:
                data = (b"\n" if journal.torn else b"") + change.line()
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
    return change


def _write_journal(path: Path, header: dict[str, Any] | None, changes: Iterable[Change]) -> None:
    lines = [json.dumps(header, sort_keys=True).encode() + b"\n"] if header else []
    lines += [c.line() for c in sorted(changes, key=lambda c: c.seq)]
    target = journal_path(path)
    if not lines and not target.exists():
        return
    atomic_write(target, b"".join(lines), mode=0o640)  # a failure is a StateError naming the journal


def mark_fold(
    path: Path, folded: int, origin: Signature, keep: Collection[int], base: Sequence[Change]
) -> None:
    """Before the folded list is renamed into place: say which changes it holds."""
    with _lock(path):
        later = [c for c in read_journal(path).changes if c.seq > folded]
        header = {"folded": folded, "from": list(origin) if origin else None, "keep": sorted(keep)}
        _write_journal(path, header, [*base, *later])


def settle_journal(path: Path, folded: int, keep: Collection[int]) -> None:
    """After the folded list is in place: drop the changes it holds."""
    with _lock(path):
        current = read_journal(path)
        if not current.changes and not current.folded:
            return
        _write_journal(path, None, [c for c in current.changes if c.seq > folded or c.seq in keep])
