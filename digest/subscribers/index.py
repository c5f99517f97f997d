"""The list's lookup index: an SQLite file beside the list mapping each address to its record.

``.<list>.index`` is valid for one signature (inode, size, mtime) of the list; a
change looks its address up there instead of reading a million lines. It is
rebuilt by the fold, or by the first lookup after the list was edited by hand, and
written to a temporary file that is renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SubscriberError
from digest.subscribers.journal import Signature

__all__ = [
    "STALE",
    "IndexBuilder",
    "IndexRow",
    "index_path",
    "index_unclosed",
    "lookup_index",
]

STALE = object()  # what lookup_index returns when the index does not describe the list as it is


def index_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.index")


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
