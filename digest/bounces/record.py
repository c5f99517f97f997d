"""What came back, remembered, and what it does to the list.

The record (``bounces.json`` in the state directory, written atomically under
``bounces.lock``) keeps every handled source (a message, keyed by its Message-ID
or a hash of its bytes, or a webhook event by its provider's id) and every event
(address, kind, when, issue). A source seen before counts nothing again. The
order makes a crash harmless: events are recorded, then statuses applied, then the
source is marked applied, then the message moved aside; a run that starts over
finds what was not applied and applies it, and reads again what was not moved.

The rules (:func:`decide`), counting only events since the subscriber (re)joined:
a complaint or a mailed unsubscribe unsubscribes; a permanent failure marks
``bounced`` at once when the mailbox does not exist (5.1.1, 5.1.10), else after
``[email] bounce_after`` of them (one per issue); ``[bounces] soft_limit`` temporary
failures within ``soft_days`` mark ``bounced`` too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from digest.bounces.classify import USER_UNKNOWN, Verdict, classify
from digest.bounces.mailbox import Mailbox, open_mailbox
from digest.config import Config
from digest.fsutil import atomic_write, file_lock, read_json
from digest.mail.tokens import load_secret
from digest.mail.verp import compact_token, token_issue
from digest.send.ledger import ledger_stems, read_ledger
from digest.subscribers.changes import find_changeable, set_statuses
from digest.subscribers.model import Subscriber, address_key
from digest.subscribers.reading import iter_subscribers

__all__ = [
    "RECORD_FILE",
    "BounceRecord",
    "ListLookup",
    "apply_events",
    "bounce_counts",
    "decide",
    "message_key",
    "read_mailbox",
]

RECORD_FILE = "bounces.json"
BATCH = 100  # messages recorded, applied and moved aside together
KEEP_DAYS = 400  # events and handled sources older than this are forgotten


@dataclass
class BounceRecord:
    """The state file's contents: handled sources and the events they carried."""

    handled: dict[str, dict[str, object]] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def load(cls, state: Path) -> BounceRecord:
        data = read_json(state / RECORD_FILE, what="the bounce record") or {}
        return cls(dict(data.get("handled", {})), list(data.get("events", [])))

    def save(self, state: Path, now: dt.datetime) -> None:
        horizon = (now - dt.timedelta(days=KEEP_DAYS)).isoformat()
        self.events = [e for e in self.events if e["at"] >= horizon]
        self.handled = {k: v for k, v in self.handled.items() if str(v.get("at", "")) >= horizon}
        # One line, by the C encoder: the file is rewritten for every batch, and may hold 100,000 events.
        data = json.dumps(
            {"handled": self.handled, "events": self.events}, ensure_ascii=False, separators=(",", ":")
        )
        atomic_write(state / RECORD_FILE, data.encode("utf-8") + b"\n", mode=0o600)

    def add(self, key: str, verdict: Verdict, now: dt.datetime) -> None:
        at = now.isoformat(timespec="seconds")
        self.handled[key] = {"at": at, "kind": verdict.kind, "applied": not verdict.acts}
        self.events += [{**asdict(e), "at": at, "source": key} for e in verdict.events]

    def by_address(self, keys: set[str]) -> dict[str, list[dict[str, str]]]:
        """The events of each of ``keys``, in one pass over the record."""
        found: dict[str, list[dict[str, str]]] = {key: [] for key in keys}
        for event in self.events:
            if event["address"] in found:
                found[event["address"]].append(event)
        return found


def message_key(data: bytes) -> str:
    """How a message is known in the record: its Message-ID, else a hash of its bytes."""
    headers = email.parser.BytesHeaderParser().parsebytes(data)
    message_id = str(headers.get("Message-ID", "")).strip()
    if message_id:
        return "mid:" + message_id
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ListLookup:
    """Tokens, addresses and Message-IDs resolved against the subscriber list and the ledgers."""

    def __init__(self, config: Config, secret: bytes):
        self.config = config
        self.secret = secret
        self.subscribers = {s.key: s for s in iter_subscribers(config.paths.subscribers, config.feeds.slugs)}
        self._tokens: dict[tuple[str, str], dict[str, str]] = {}
        self._message_ids: dict[str, tuple[str, str]] | None = None

    def listed(self, address: str) -> str | None:
        key = address_key(address)
        return key if key in self.subscribers else None

    def by_token(self, token: str, purpose: str) -> str | None:
        issue = token_issue(token)
        if issue is None:
            return None
        table = self._tokens.get((purpose, issue))
        if table is None:
            table = {compact_token(self.secret, purpose, issue, key): key for key in self.subscribers}
            self._tokens[(purpose, issue)] = table
        return table.get(token.lower())

    def by_message_id(self, message_id: str) -> tuple[str, str] | None:
        if not message_id:
            return None
        if self._message_ids is None:
            state = self.config.paths.state
            self._message_ids = {
                o.message_id: (stem, to)
                for stem in ledger_stems(state)
                for to, o in read_ledger(state, stem).outcomes.items()
                if o.message_id
            }
        return self._message_ids.get(message_id.strip())


def decide(
    config: Config,
    record: BounceRecord,
    subscribers: dict[str, Subscriber],
    keys: Iterable[str],
    now: dt.datetime,
) -> dict[str, tuple[str, str]]:
    """The new status (and why) of each of ``keys`` that the recorded events change."""
    changes: dict[str, tuple[str, str]] = {}
    soft_from = (now - dt.timedelta(days=config.bounces.soft_days)).isoformat()
    history = record.by_address(set(keys))
    for key in sorted(history):
        subscriber = subscribers.get(key)
        if subscriber is None or not subscriber.active:
            continue
        events = [e for e in history[key] if e["at"][:10] >= subscriber.since[:10]]
        kinds = {e["kind"] for e in events}
        hard = [e for e in events if e["kind"] == "hard"]
        hard_issues = {e.get("issue") or e["source"] for e in hard}
        soft = [e for e in events if e["kind"] == "soft" and e["at"] >= soft_from]
        if "complaint" in kinds:
            changes[key] = ("unsubscribed", "complained (spam report)")
        elif "unsubscribe" in kinds:
            changes[key] = ("unsubscribed", "asked to unsubscribe by mail")
        elif any(e.get("status") in USER_UNKNOWN for e in hard):
            changes[key] = ("bounced", "no such mailbox")
        elif len(hard_issues) >= config.email.bounce_after:
            changes[key] = ("bounced", f"{len(hard_issues)} permanent failures")
        elif len(soft) >= config.bounces.soft_limit:
            changes[key] = ("bounced", f"{len(soft)} temporary failures in {config.bounces.soft_days} days")
    return changes


def _apply(
    config: Config,
    record: BounceRecord,
    sources: list[str],
    subscribers: dict[str, Subscriber],
    now: dt.datetime,
    dry_run: bool,
) -> dict[str, tuple[str, str]]:
    """Apply what the not yet applied ``sources`` decide, and mark them applied; the changes made."""
    pending = {k for k in sources if not record.handled.get(k, {}).get("applied")}
    keys = {e["address"] for e in record.events if e.get("source") in pending}
    changes = decide(config, record, subscribers, keys, now)
    if dry_run:
        return changes
    if not changes:  # nothing to apply: recorded and applied in one write
        for key in pending:
            record.handled[key]["applied"] = True
        record.save(config.paths.state, now)
        return changes
    record.save(config.paths.state, now)  # the events first: a crash after this loses nothing
    set_statuses(config.paths.subscribers, config.feeds.slugs, {k: s for k, (s, _) in changes.items()})
    for key, (status, _) in changes.items():
        subscribers[key] = replace(subscribers[key], status=status)
    for key in pending:
        record.handled[key]["applied"] = True
    record.save(config.paths.state, now)
    return changes


def _lock(state: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(state / "bounces.lock", what="the bounce record", wait=30.0)


def apply_events(config: Config, source: str, verdict: Verdict, now: dt.datetime) -> str:
    """Record one webhook event (``source``: its provider's id) and apply it; a line saying what it did."""
    state = config.paths.state
    with _lock(state):
        record = BounceRecord.load(state)
        if record.handled.get(source, {}).get("applied"):
            return f"{source}: already handled"
        if source not in record.handled:
            record.add(source, verdict, now)
        # Only this event's addresses are looked up (in the list's index): a webhook does not read the list.
        addresses = {e["address"] for e in record.events if e.get("source") == source}
        addresses |= {event.address for event in verdict.events}
        path, slugs = config.paths.subscribers, config.feeds.slugs
        subscribers = {k: found for k in addresses if (found := find_changeable(path, slugs, k)) is not None}
        changes = _apply(config, record, [source], subscribers, now, dry_run=False)
    return _describe(source, verdict, changes, subscribers, dry_run=False)


def _describe(
    key: str,
    verdict: Verdict,
    changes: dict[str, tuple[str, str]],
    subscribers: dict[str, Subscriber],
    *,
    dry_run: bool,
) -> str:
    if not verdict.acts:
        return f"{key}: {verdict.kind}: {verdict.reason}; left for a person"
    parts = []
    for event in verdict.events:
        change = changes.get(event.address)
        if change:
            parts.append(f"{event.address} {'would be' if dry_run else 'is now'} {change[0]} ({change[1]})")
        else:
            found = subscribers.get(event.address)
            parts.append(f"{event.address}: {event.reason}, counted (stays {found.status if found else '?'})")
    return f"{key}: {verdict.kind}: {verdict.reason}: " + "; ".join(parts)


def read_mailbox(config: Config, *, dry_run: bool = False, now: dt.datetime | None = None) -> list[str]:
    """``digest bounces``: read every unhandled message in ``[bounces] mailbox``; one line per message."""
    now = now or dt.datetime.now(dt.UTC)
    state = config.paths.state
    lines: list[str] = []
    box = open_mailbox(config)
    try:
        with _lock(state):
            record = BounceRecord.load(state)
            lookup = ListLookup(config, load_secret(state))
            batch: list[tuple[str, str, Verdict | None]] = []
            for box_key, data in box.unread():
                key = message_key(data)
                verdict = None if key in record.handled else classify(data, config, lookup)
                if verdict is not None:
                    record.add(key, verdict, now)
                batch.append((box_key, key, verdict))
                if len(batch) >= BATCH:
                    lines += _finish(config, record, lookup, box, batch, now, dry_run)
                    batch = []
            lines += _finish(config, record, lookup, box, batch, now, dry_run)
    finally:
        box.close()
    return lines


def _finish(
    config: Config,
    record: BounceRecord,
    lookup: ListLookup,
    box: Mailbox,
    batch: list[tuple[str, str, Verdict | None]],
    now: dt.datetime,
    dry_run: bool,
) -> list[str]:
    """Apply a batch, then move aside each message that acted (new or seen before); its lines."""
    if not batch:
        return []
    changes = _apply(config, record, [key for _, key, _ in batch], lookup.subscribers, now, dry_run)
    lines = []
    acting = {e.get("source") for e in record.events}
    for box_key, key, verdict in batch:
        if verdict is not None:
            lines.append(_describe(box_key, verdict, changes, lookup.subscribers, dry_run=dry_run))
        if key in acting and not dry_run:
            box.move_aside(box_key)
    return lines


def bounce_counts(state: Path) -> dict[str, tuple[int, int]]:
    """issue -> (addresses that bounced permanently, addresses that complained), from the record."""
    bounced: dict[str, set[str]] = {}
    complained: dict[str, set[str]] = {}
    for event in BounceRecord.load(state).events:
        issue = event.get("issue") or ""
        if event["kind"] == "hard":
            bounced.setdefault(issue, set()).add(event["address"])
        elif event["kind"] == "complaint":
            complained.setdefault(issue, set()).add(event["address"])
    issues = set(bounced) | set(complained)
    return {i: (len(bounced.get(i, ())), len(complained.get(i, ()))) for i in issues}
