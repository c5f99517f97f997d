"""Who a round mails: the snapshot taken when it starts, and each status checked before a message goes.

Who is due is fixed when the round starts (``fix_recipients`` writes the snapshot), so a
list saved in place, reordered, or deleted and written back while the send runs
changes nobody's turn; what stops a mail is an explicit non-active status (``Recipients``).
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Container, Iterator
from pathlib import Path

from digest.send.ledger import (
    read_recipients,
    write_recipients,
)
from digest.subscribers.journal import journal_path
from digest.subscribers.model import Subscriber
from digest.subscribers.reading import (
    journal_statuses,
    list_signature,
    read_statuses,
    scan_subscribers,
)

__all__ = ["Recipients", "fix_recipients", "unreached"]


class Recipients:
    """One shard's recipients not yet done, from the round's snapshot; statuses re-read as the list changes.

    Who is due was fixed when the round started, so a list saved in place,
    reordered, or deleted and written back while the send runs changes nobody's
    turn. What stops a mail is an explicit non-active status: from the journal,
    or from a read of the list file that did not change while it was read (see
    :func:`read_statuses`). A list missing, emptied or unreadable mid-send says
    nothing about anyone; an address no longer listed keeps its last known status.
    """

    def __init__(
        self,
        path: Path,
        sections: Collection[str],
        done: Container[str],
        snapshot: Path,
        shard: int = 0,
        shards: int = 1,
    ):
        self.path = path
        self.sections = sections
        self.done = done
        self.snapshot = snapshot
        self.shard = shard
        self.shards = shards
        self._journal_path = journal_path(path)
        self._signature = self._signatures()
        self._listed: dict[str, str] = {}  # statuses from the last whole read of the file
        self._journal: dict[str, str] = {}

    def _signatures(self) -> tuple[object, object]:
        return list_signature(self.path), list_signature(self._journal_path)

    def mine(self, key: str) -> bool:
        """Whether this shard sends to the address ``key`` (normalised, as the list finds duplicates).

        Two spellings of one address always land in one shard.
        """
        return zlib.crc32(key.encode()) % self.shards == self.shard

    def due(self) -> Iterator[Subscriber]:
        """Everyone of the snapshot, in this shard (done or not)."""
        for record in read_recipients(self.snapshot):
            key = str(record["key"])
            if self.shards == 1 or self.mine(key):
                sections = frozenset(record.get("sections", ()))
                yield Subscriber(record["email"], record.get("name", ""), sections, "active", "", 0)

    def __iter__(self) -> Iterator[Subscriber]:
        for subscriber in self.due():
            if subscriber.key not in self.done:
                yield subscriber

    def survey(self) -> int:
        """How many of this round's recipients are still to be sent."""
        return sum(1 for _ in self)

    def refresh(self) -> None:
        listed = read_statuses(self.path, self.sections)
        if listed is not None:
            self._listed.update(listed)  # an address no longer listed keeps its last known status
        self._journal = journal_statuses(self.path)

    def status(self, key: str) -> str | None:
        """The explicit status of ``key`` as last known (None: nothing says, so still due)."""
        return self._journal.get(key) or self._listed.get(key)

    def still_active(self, subscriber: Subscriber) -> bool:
        """False once the subscriber is explicitly not active any more (checked per message)."""
        signature = self._signatures()
        if signature != self._signature:
            self._signature = signature
            self.refresh()
        return self.status(subscriber.key) in (None, "active")


def fix_recipients(path: Path, known: Collection[str], snapshot: Path, done: Container[str]) -> list[str]:
    """Read the list once: its unreadable lines, and (when the round starts) who is due, kept in ``snapshot``.

    A round that already has its snapshot (a resumed send) keeps it.
    """
    problems: list[str] = []

    def due() -> Iterator[dict[str, object]]:
        for subscriber, problem in scan_subscribers(path, known):
            if problem is not None:
                problems.append(problem.format(path))
            elif subscriber is not None and subscriber.active and subscriber.key not in done:
                yield {
                    "key": subscriber.key,
                    "email": subscriber.email,
                    "name": subscriber.name,
                    "sections": sorted(subscriber.sections),
                }

    if snapshot.exists():
        for _ in due():
            pass
    else:
        write_recipients(snapshot, due())
    return problems


def unreached(recipients: Recipients, reached: Container[str]) -> int:
    """How many of the round's recipients have no outcome and were not explicitly unsubscribed meanwhile.

    The list's statuses are read only when someone has no outcome (rare), not for every send.
    """
    missing = [s.key for s in recipients.due() if s.key not in reached]
    if not missing:
        return 0
    recipients.refresh()
    return sum(1 for key in missing if recipients.status(key) in (None, "active"))
