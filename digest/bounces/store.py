"""The record of what came back: ``bounces.sqlite`` in the state directory.

Every handled source (a message, keyed by its Message-ID or a hash of its bytes,
or a webhook event by its provider's id) and every event it carried (address,
kind, when, issue) are rows of an SQLite database in WAL mode, written in
transactions that are durable when they commit. A webhook adds a few rows and
reads the rows of one address through an index, so its cost does not grow with
the history, and nothing is ever rewritten whole. A source seen before counts
nothing again: its key is the table's primary key.

A record kept by an earlier digest (``bounces.json``) is imported once, on first
use, and renamed ``bounces.json.imported``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from digest.bounces.classify import Verdict
from digest.errors import StateError

__all__ = ["KEEP_DAYS", "LEGACY_FILE", "STORE_FILE", "BounceStore", "bounce_counts"]

STORE_FILE = "bounces.sqlite"
LEGACY_FILE = "bounces.json"
KEEP_DAYS = 400  # events and handled sources older than this are forgotten
_CHUNK = 500  # addresses or keys per IN (...) query
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (key TEXT PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL,
                                    applied INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (source TEXT NOT NULL, address TEXT NOT NULL, kind TEXT NOT NULL,
                                   reason TEXT NOT NULL, issue TEXT NOT NULL, status TEXT NOT NULL,
                                   at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_address ON events (address);
CREATE INDEX IF NOT EXISTS events_by_source ON events (source);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
CREATE INDEX IF NOT EXISTS sources_by_time ON sources (at);
"""
_EVENT_COLUMNS = ("source", "address", "kind", "reason", "issue", "status", "at")
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"
)


class BounceStore:
    """An open record; use as a context manager. ``wait``: seconds to wait for another writer."""

    def __init__(self, state: Path, *, wait: float = 30.0):
        self.path = state / STORE_FILE
        try:
            state.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=wait, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            os.chmod(self.path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the bounce record: {_reason(exc)}", path=self.path) from None
        self._import_legacy(state / LEGACY_FILE)

    def __enter__(self) -> BounceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[None]:
        """One transaction: committed (durably) at the end, or rolled back (``commit=False``, or on error)."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StateError(f"the bounce record is busy: {_reason(exc)}", path=self.path) from None
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        try:
            self.db.execute("COMMIT" if commit else "ROLLBACK")
        except sqlite3.Error as exc:
            raise StateError(f"cannot write the bounce record: {_reason(exc)}", path=self.path) from None

    def seen(self, key: str) -> bool | None:
        """None: never seen; False: recorded, not yet applied; True: applied."""
        row = self.db.execute("SELECT applied FROM sources WHERE key = ?", (key,)).fetchone()
        return None if row is None else bool(row[0])

    def add(self, key: str, verdict: Verdict, now: dt.datetime) -> None:
        """Record a source and its events (in a :meth:`transaction`); a source seen before adds nothing."""
        at = now.isoformat(timespec="seconds")
        added = self.db.execute(
            "INSERT OR IGNORE INTO sources (key, at, kind, applied) VALUES (?, ?, ?, ?)",
            (key, at, verdict.kind, int(not verdict.acts)),
        ).rowcount
        if added:
            rows = [{**asdict(e), "at": at, "source": key} for e in verdict.events]
            self.db.executemany(
                _INSERT_EVENT,
                [tuple(row[c] for c in _EVENT_COLUMNS) for row in rows],
            )

    def pending(self, keys: Iterable[str]) -> list[str]:
        """Those of ``keys`` recorded but not yet applied."""
        return [
            k
            for chunk in _chunks(keys)
            for (k,) in self._select("SELECT key FROM sources", "key", chunk, "applied = 0")
        ]

    def addresses_of(self, sources: Iterable[str]) -> set[str]:
        return {
            a
            for chunk in _chunks(sources)
            for (a,) in self._select("SELECT DISTINCT address FROM events", "source", chunk)
        }

    def events_of(self, addresses: Iterable[str]) -> dict[str, list[dict[str, str]]]:
        """The events of each address, oldest first."""
        found: dict[str, list[dict[str, str]]] = {}
        query = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events"
        for chunk in _chunks(addresses):
            for address in chunk:
                found.setdefault(address, [])
            for row in self._select(query, "address", chunk, order="at, rowid"):
                event = dict(zip(_EVENT_COLUMNS, row, strict=True))
                found[event["address"]].append(event)
        return found

    def mark_applied(self, keys: Iterable[str]) -> None:
        self.db.executemany("UPDATE sources SET applied = 1 WHERE key = ?", [(k,) for k in keys])

    def acting(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` that carried an event (the messages to move aside)."""
        return {
            k
            for chunk in _chunks(keys)
            for (k,) in self._select("SELECT DISTINCT source FROM events", "source", chunk)
        }

    def forget_before(self, now: dt.datetime) -> None:
        """Forget events and sources older than :data:`KEEP_DAYS` (within a :meth:`transaction`)."""
        horizon = (now - dt.timedelta(days=KEEP_DAYS)).isoformat()
        self.db.execute("DELETE FROM events WHERE at < ?", (horizon,))
        self.db.execute("DELETE FROM sources WHERE at < ?", (horizon,))

    def _select(
        self, query: str, column: str, values: list[str], where: str = "", order: str = ""
    ) -> Iterator[tuple[Any, ...]]:
        condition = f"{column} IN ({', '.join('?' * len(values))})" + (f" AND {where}" if where else "")
        sql = f"{query} WHERE {condition}" + (f" ORDER BY {order}" if order else "")
        try:
            yield from self.db.execute(sql, values)
        except sqlite3.Error as exc:
            raise StateError(f"cannot read the bounce record: {_reason(exc)}", path=self.path) from None

    def _import_legacy(self, legacy: Path) -> None:
        """Bring the events and sources of a ``bounces.json`` in, once; then rename it."""
        if not legacy.is_file():
            return
        try:
            data = json.loads(legacy.read_bytes() or b"{}")
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read the old bounce record: {exc}", path=legacy) from None
        handled = data.get("handled", {}) if isinstance(data, dict) else {}
        events = data.get("events", []) if isinstance(data, dict) else []
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO sources (key, at, kind, applied) VALUES (?, ?, ?, ?)",
                [
                    (str(k), str(v.get("at", "")), str(v.get("kind", "")), int(bool(v.get("applied"))))
                    for k, v in handled.items()
                    if isinstance(v, dict)
                ],
            )
            self.db.executemany(
                _INSERT_EVENT,
                [tuple(str(e.get(c, "")) for c in _EVENT_COLUMNS) for e in events if isinstance(e, dict)],
            )
        os.replace(legacy, legacy.with_name(legacy.name + ".imported"))


def bounce_counts(state: Path) -> dict[str, tuple[int, int]]:
    """issue -> (addresses that bounced permanently, addresses that complained), from the record."""
    if not (state / STORE_FILE).exists() and not (state / LEGACY_FILE).exists():
        return {}
    counts: dict[str, list[int]] = {}
    with BounceStore(state) as store:
        rows = store.db.execute(
            "SELECT issue, kind, COUNT(DISTINCT address) FROM events "
            "WHERE kind IN ('hard', 'complaint') GROUP BY issue, kind"
        )
        for issue, kind, number in rows:
            counts.setdefault(issue, [0, 0])[0 if kind == "hard" else 1] = number
    return {issue: (pair[0], pair[1]) for issue, pair in counts.items()}


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _reason(exc: OSError | sqlite3.Error) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
