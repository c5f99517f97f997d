"""The subscriber list's change journal and its lookup index, both kept beside the list.

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

``.<list>.index`` is an SQLite file mapping each address to its record, valid
for one signature of the list; a change looks its address up there instead of
reading a million lines. It is rebuilt by the fold, or by the first lookup after
the list was edited by hand.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import tempfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.fsutil import atomic_write, file_lock, fsync_directory

__all__ = [
    "STALE",
    "Change",
    "IndexBuilder",
    "IndexRow",
    "Journal",
    "SubscriberUnavailable",
    "append_change",
    "build_index",
    "index_path",
    "index_unclosed",
    "journal_path",
    "lookup_index",
    "mark_fold",
    "read_journal",
    "settle_journal",
]

LOCK_WAIT = 10.0
Signature = tuple[int, int, int] | None
STALE = object()  # what lookup_index returns when the index does not describe the list as it is


class SubscriberUnavailable(SubscriberError):
    """The list cannot be read or changed right now (missing, unreadable, the record on a broken line).

    Nothing was changed; the caller should say "try again" (the web answers 503).
    """


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal")


def index_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.index")


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


# -- the index ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexRow:
    """An address's record: its line, and its fields when the record can be read (``readable``)."""

    key: str
    line: int
    readable: bool
    email: str = ""
    name: str = ""
    sections: str = ""
    status: str = ""
    since: str = ""


_COLUMNS = "key, line, readable, email, name, sections, status, since"


class IndexBuilder:
    """An index being written beside the list row by row (memory stays flat); ``finish`` puts it in place."""

    def __init__(self, path: Path):
        self.path = path
        self._batch: list[tuple[object, ...]] = []
        self.unclosed: int | None = None  # the line of a record whose quote runs to the end of the list
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.index.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            self._db: sqlite3.Connection | None = sqlite3.connect(self._tmp)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute("CREATE TABLE meta (signature TEXT, unclosed INTEGER)")
            self._db.execute(f"CREATE TABLE rows ({_COLUMNS}, PRIMARY KEY (key)) WITHOUT ROWID")
        except (OSError, sqlite3.Error) as exc:
            reason = _reason(exc)
            raise SubscriberError(f"cannot write the list's index: {reason}", path=index_path(path)) from None

    def __enter__(self) -> IndexBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, row: IndexRow) -> None:
        self._batch.append(
            (row.key, row.line, row.readable, row.email, row.name, row.sections, row.status, row.since)
        )
        if len(self._batch) >= 10_000:
            self._flush()

    def _flush(self) -> None:
        assert self._db is not None
        self._db.executemany("INSERT OR IGNORE INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._batch)
        self._batch = []

    def finish(self, signature: Signature) -> None:
        """Mark the index as describing the list with ``signature`` and rename it into place."""
        try:
            self._flush()
            assert self._db is not None
            self._db.execute("INSERT INTO meta VALUES (?, ?)", (json.dumps(signature), self.unclosed))
            self._db.commit()
            self._db.close()
            self._db = None
            os.chmod(self._tmp, 0o640)
            os.replace(self._tmp, index_path(self.path))
        except (OSError, sqlite3.Error) as exc:
            raise SubscriberError(
                f"cannot write the list's index: {_reason(exc)}", path=index_path(self.path)
            ) from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def build_index(path: Path, signature: Signature, rows: Iterable[IndexRow]) -> None:
    """Write the index of the list with ``signature`` (first record of an address wins)."""
    with IndexBuilder(path) as builder:
        for row in rows:
            builder.add(row)
        builder.finish(signature)


def index_unclosed(path: Path, signature: Signature) -> int | None:
    """The line of a record whose quote is left open to the end of the list, as the index knows it."""
    try:
        with _read_only(path) as db:
            stored, unclosed = db.execute("SELECT signature, unclosed FROM meta").fetchone()
    except (sqlite3.Error, TypeError):
        return None
    return unclosed if _describes(stored, signature) else None


def lookup_index(path: Path, signature: Signature, key: str) -> IndexRow | object | None:
    """The record of ``key``: None when not listed, STALE when the index is not for ``signature``."""
    if not index_path(path).exists():
        return STALE
    try:
        with _read_only(path) as db:
            (stored,) = db.execute("SELECT signature FROM meta").fetchone()
            if not _describes(stored, signature):
                return STALE
            row = db.execute(f"SELECT {_COLUMNS} FROM rows WHERE key = ?", (key,)).fetchone()
    except (sqlite3.Error, ValueError, TypeError):
        return STALE  # a damaged index is rebuilt
    return IndexRow(row[0], row[1], bool(row[2]), *row[3:]) if row else None


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """The list's index, opened read-only (a reader never creates or changes it)."""
    return contextlib.closing(sqlite3.connect(index_path(path).resolve().as_uri() + "?mode=ro", uri=True))


def _describes(stored: str, signature: Signature) -> bool:
    """Whether an index built for the list version ``stored`` describes the list as it is now."""
    return json.loads(stored) == (list(signature) if signature else None)


def _reason(exc: OSError | sqlite3.Error) -> str:
    """Why a write failed, in the words the rest of digest uses (SQLite says "database or disk is full")."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return os.strerror(errno.ENOSPC)
    return str(exc)
