"""What came back, remembered, and what it does to the list.

The record (:mod:`digest.bounces.store`, ``bounces.sqlite`` in the state directory)
keeps every handled source (a message, keyed by its Message-ID or a hash of its
bytes, or a webhook event by its provider's id) and every event (address, kind,
when, issue). A source seen before counts nothing again. The order makes a crash
harmless: events are recorded (one committed transaction), then statuses applied,
then the source is marked applied, then the message moved aside; a run that starts
over finds what was not applied and applies it, and reads again what was not
moved. Two mailbox readers are kept apart by ``bounces.lock``; a webhook takes no
file lock, only the record's own short write transactions, so it neither waits for
a mailbox being read nor costs more as the record grows.

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
import hmac
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from digest.bounces.classify import USER_UNKNOWN, Verdict, classify
from digest.bounces.mailbox import Mailbox, open_mailbox
from digest.bounces.store import BounceStore, bounce_counts
from digest.config import Config
from digest.fsutil import file_lock
from digest.mail.tokens import load_secret, message_id_digest
from digest.mail.verp import compact_token, token_issue
from digest.send.ledger import ledger_stems
from digest.subscribers.changes import find_changeable, set_statuses
from digest.subscribers.model import Subscriber, address_key
from digest.subscribers.reading import iter_subscribers

__all__ = [
    "ListLookup",
    "apply_events",
    "bounce_counts",
    "decide",
    "message_key",
    "read_mailbox",
]

BATCH = 100  # messages recorded, applied and moved aside together
WEBHOOK_WAIT = 5.0  # seconds a webhook waits for another writer of the record before a 503
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")


def message_key(data: bytes) -> str:
    """How a message is known in the record: its Message-ID, else a hash of its bytes."""
    try:
        headers = email.parser.BytesHeaderParser().parsebytes(data)
        message_id = str(headers.get("Message-ID", "")).strip()
    except (LookupError, ValueError, TypeError, UnicodeError):  # headers no parser takes: known by bytes
        message_id = ""
    if message_id:
        return "mid:" + message_id
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ListLookup:
    """What a report names, checked against what digest signed; addresses against the list.

    A token or a Message-ID names an issue: one that names an issue never sent (no
    ledger) is refused before anything is hashed. A token is matched by hashing the
    list for its issue (a table kept for the last few issues asked about, so memory
    does not grow with the issues); a Message-ID is checked by making it again for
    the address the report names, so no ledger is read.
    """

    TABLES = 4  # token tables kept (one per issue and purpose)
    RECENT_ISSUES = 60  # issues whose Message-IDs are recognised (a year and more of weekly issues)
    ROUNDS = 4  # rounds of one issue (a send and its resends) whose Message-IDs are recognised

    def __init__(self, config: Config, secret: bytes):
        self.config = config
        self.secret = secret
        self.subscribers = {s.key: s for s in iter_subscribers(config.paths.subscribers, config.feeds.slugs)}
        self.sent_issues = frozenset(ledger_stems(config.paths.state))
        # Reports come back within days: a Message-ID is looked for among the latest issues, newest first.
        self._recent = sorted(self.sent_issues, reverse=True)[: self.RECENT_ISSUES]
        self._tokens: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()

    def listed(self, address: str) -> str | None:
        key = address_key(address)
        return key if key in self.subscribers else None

    def by_token(self, token: str, purpose: str) -> str | None:
        issue = token_issue(token)
        if issue is None or issue not in self.sent_issues:
            return None
        table = self._tokens.pop((purpose, issue), None)
        if table is None:
            table = {compact_token(self.secret, purpose, issue, key): key for key in self.subscribers}
        self._tokens[(purpose, issue)] = table
        while len(self._tokens) > self.TABLES:
            self._tokens.popitem(last=False)
        return table.get(token.lower())

    def by_message_id(self, message_id: str, address: str) -> str | None:
        local = message_id.strip().strip("<>").split("@", 1)[0].lower()
        if not address or not _MESSAGE_ID.fullmatch(local):
            return None
        key = address_key(address)
        for issue in self._recent:  # the latest first: the likely ones
            for round_ in range(1, self.ROUNDS + 1):
                if hmac.compare_digest(message_id_digest(self.secret, issue, key, round_), local):
                    return issue
        return None


def decide(
    config: Config,
    history: dict[str, list[dict[str, str]]],
    subscribers: dict[str, Subscriber],
    now: dt.datetime,
) -> dict[str, tuple[str, str]]:
    """The new status (and why) of each address of ``history`` (its recorded events) that they change."""
    changes: dict[str, tuple[str, str]] = {}
    soft_from = (now - dt.timedelta(days=config.bounces.soft_days)).isoformat()
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
    store: BounceStore,
    sources: list[str],
    subscribers: dict[str, Subscriber],
    now: dt.datetime,
    dry_run: bool,
) -> dict[str, tuple[str, str]]:
    """Apply what the recorded, not yet applied ``sources`` decide, and mark them applied; the changes.

    The events are committed before this; the statuses are set, then the sources
    marked applied: a crash in between applies them again, which changes nothing.
    """
    pending = store.pending(sources)
    if not pending:
        return {}
    changes = decide(config, store.events_of(store.addresses_of(pending)), subscribers, now)
    if dry_run:
        return changes
    if changes:
        set_statuses(config.paths.subscribers, config.feeds.slugs, {k: s for k, (s, _) in changes.items()})
        for key, (status, _) in changes.items():
            subscribers[key] = replace(subscribers[key], status=status)
    with store.transaction():
        store.mark_applied(pending)
    return changes


def _lock(state: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(state / "bounces.lock", what="the bounce record", wait=30.0)


def apply_events(config: Config, source: str, verdict: Verdict, now: dt.datetime) -> str:
    """Record one webhook event (``source``: its provider's id) and apply it; a line saying what it did.

    Its cost does not grow with the record: a few rows added, one address's rows read.
    """
    with BounceStore(config.paths.state, wait=WEBHOOK_WAIT) as store:
        if store.seen(source):
            return f"{source}: already handled"
        with store.transaction():
            store.add(source, verdict, now)
        # Only this event's addresses are looked up (in the list's index): a webhook does not read the list.
        addresses = store.addresses_of([source]) | {event.address for event in verdict.events}
        path, slugs = config.paths.subscribers, config.feeds.slugs
        subscribers = {k: found for k in addresses if (found := find_changeable(path, slugs, k)) is not None}
        changes = _apply(config, store, [source], subscribers, now, dry_run=False)
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
    """``digest bounces``: read every unhandled message in ``[bounces] mailbox``; one line per message.

    With ``dry_run`` every batch is rolled back: the record and the list stay as they were.
    """
    now = now or dt.datetime.now(dt.UTC)
    state = config.paths.state
    lines: list[str] = []
    box = open_mailbox(config)
    try:
        with _lock(state), BounceStore(state) as store:
            if not dry_run:
                with store.transaction():
                    store.forget_before(now)
            lookup = ListLookup(config, load_secret(state))
            batch: list[tuple[str, str, bytes]] = []
            for box_key, data in box.unread():
                batch.append((box_key, message_key(data), data))
                if len(batch) >= BATCH:
                    lines += _batch(config, store, lookup, box, batch, now, dry_run)
                    batch = []
            lines += _batch(config, store, lookup, box, batch, now, dry_run)
    finally:
        box.close()
    return lines


def _batch(
    config: Config,
    store: BounceStore,
    lookup: ListLookup,
    box: Mailbox,
    batch: list[tuple[str, str, bytes]],
    now: dt.datetime,
    dry_run: bool,
) -> list[str]:
    """Record a batch (one transaction), apply it, then move aside each message that acted; its lines."""
    if not batch:
        return []
    verdicts: dict[str, Verdict | None] = {}
    with store.transaction(commit=not dry_run):
        for _, key, data in batch:
            if key in verdicts:
                continue
            verdicts[key] = None if store.seen(key) is not None else classify(data, config, lookup)
            verdict = verdicts[key]
            if verdict is not None:
                store.add(key, verdict, now)
        if dry_run:  # what the batch would change, read before the transaction is rolled back
            changes = _apply(config, store, list(verdicts), lookup.subscribers, now, dry_run=True)
    if not dry_run:
        changes = _apply(config, store, list(verdicts), lookup.subscribers, now, dry_run=False)
    acting = store.acting(list(verdicts)) if not dry_run else set()
    lines = []
    for box_key, key, _ in batch:
        verdict = verdicts.get(key)
        if verdict is not None:
            lines.append(_describe(box_key, verdict, changes, lookup.subscribers, dry_run=dry_run))
            verdicts[key] = None  # a message delivered twice in one batch: one line
        if key in acting:
            box.move_aside(box_key)
    return lines
