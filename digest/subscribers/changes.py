"""The operations behind ``digest subscribers``, the web endpoints, the webhooks and the bounce reader.

A change finds its address through the list's index and appends one fsynced line
to the change journal (:mod:`digest.subscribers.journal`): once it returns, the
change is never lost. Each operation reads the journal once, and only the lines of
the addresses it changes. Every reader applies the journal on top of the file, and
:func:`fold_journal` writes it into the file (:mod:`digest.subscribers.rewrite`).
A status change for an address on a line that cannot be read is journaled all the
same and waits, pending, until the line is fixed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.subscribers.index import STALE, IndexBuilder, IndexRow, index_unclosed, lookup_index
from digest.subscribers.journal import (
    Change,
    Journal,
    SubscriberUnavailable,
    append_change,
    append_changes,
    read_journal,
)
from digest.subscribers.model import Problem, Subscriber, address_key, check_email, check_name
from digest.subscribers.reading import Overlay, list_signature, read_subscribers
from digest.subscribers.rewrite import (
    list_lock,
    rewrite_list,
    rewritten_list,
    swallowing_error,
    sweep_leftovers,
)

__all__ = [
    "ImportReport",
    "add_subscriber",
    "find_changeable",
    "find_subscriber",
    "fold_journal",
    "import_subscribers",
    "remove_subscriber",
    "set_sections",
    "set_status",
    "set_statuses",
    "warm_index",
]


def find_subscriber(path: Path, known_sections: Collection[str], email: str) -> Subscriber | None:
    """One subscriber by address (from the index, the journal applied); None when not listed or unreadable."""
    return _lookup(path, known_sections, address_key(email)).subscriber


@dataclass(frozen=True)
class _Found:
    """What the list says about one address: its subscriber, or the line of its unreadable record."""

    subscriber: Subscriber | None
    unreadable: int | None = None
    listed: bool = True  # False: there is no list file at all
    pending: tuple[Change, ...] = ()  # the journal's changes to an unreadable record, waiting for its fix


def _lookup(path: Path, known: Collection[str], key: str, journal: Journal | None = None) -> _Found:
    """One address's record from the index (rebuilt first if the list changed), the journal applied.

    ``journal``: the journal as already read by the operation (it is parsed once per operation).
    """
    signature = list_signature(path)
    row = lookup_index(path, signature, key) if signature is not None else None
    if row is STALE:
        with list_lock(path):
            sweep_leftovers(path)
            signature = list_signature(path)  # a fold may have just put a new list and index in place
            row = lookup_index(path, signature, key)
            if row is STALE:
                with IndexBuilder(path) as index:
                    row = rewritten_list(path, known, None, None, (), index, want=key).found
                    if list_signature(path) == signature:  # not edited by hand while it was read
                        index.finish(signature)
    assert row is None or isinstance(row, IndexRow)
    journal = read_journal(path, [key]) if journal is None else journal
    changes = [c for c in journal.pending(signature) if c.key == key]
    if row is not None and not row.readable:
        return _Found(None, row.line, pending=tuple(changes))
    base = None
    if row is not None:
        sections = frozenset(s for s in row.sections.split(";") if s)
        base = Subscriber(row.email, row.name, sections, row.status, row.since, row.line)
    return _Found(Overlay(changes).apply(key, base), listed=signature is not None)


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
    new = Subscriber(address, check_name(name), frozenset(sections), "active", today.isoformat())
    current = _readable(path, _lookup(path, known, new.key), address)
    if current is not None and current.active:
        raise SubscriberError(f"{address} is already subscribed", path=path, line=current.line or None)
    if current is not None:
        name, chosen = new.name or current.name, new.sections or current.sections
        new = replace(current, status="active", since=new.since, name=name, sections=chosen)
    elif (unclosed := index_unclosed(path, list_signature(path))) is not None:
        raise swallowing_error(path, unclosed)
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
    """Give each listed address (lower case) its new status; returns the subscribers changed.

    One read of the journal and one fsynced append for the whole batch. An address
    on a line that cannot be read gets its change all the same: it is journaled
    and waits, pending, until the line is fixed (a complaint is never dropped).
    """
    changed: list[Subscriber] = []
    items: list[tuple[str, str, dict[str, Any]]] = []
    journal = read_journal(path, statuses)
    for key, status in statuses.items():
        found = _lookup(path, known, key, journal)
        current = found.subscriber
        if current is None and found.unreadable is not None:
            if not any(c.fields.get("status") == status for c in found.pending[-1:]):
                items.append((key, "update", {"status": status}))
            changed.append(Subscriber(key, "", frozenset(), status, "", found.unreadable))
        elif current is not None and current.status != status:
            items.append((key, "update", {"status": status}))
            changed.append(replace(current, status=status))
    append_changes(path, items)
    return changed


def find_changeable(path: Path, known: Collection[str], email: str) -> Subscriber | None:
    """The subscriber a status change can act on: as :func:`find_subscriber`, and for a record on a
    line that cannot be read an active stand-in (the change made to it waits until the line is fixed)."""
    key = address_key(email)
    found = _lookup(path, known, key)
    if found.unreadable is None:
        return found.subscriber
    statuses = [str(c.fields["status"]) for c in found.pending if "status" in c.fields]
    status = statuses[-1] if statuses else "active"
    return Subscriber(key, "", frozenset(), status, "", found.unreadable)


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
    return rewrite_list(path, known)


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

    rewrite_list(path, known, None, append)
    return ImportReport(tuple(added), tuple(present), incoming.problems)
