"""Who a round mails: the snapshot taken when it starts, and each status checked before a message goes.

Who is due is fixed when the round starts (``fix_recipients`` writes the snapshot), so a
list saved in place, reordered, or deleted and written back while the send runs
changes nobody's turn; what stops a mail is an explicit non-active status when the message is
about to go, whether the round is new, resumed or sent again (``Recipients``).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Collection, Container, Iterable, Iterator
from pathlib import Path

from digest.send.ledger import (
    read_recipients,
    write_recipients,
)
from digest.subscribers.journal import (
    Change,
    Signature,
    erased_digest,
    journal_path,
    parse_journal,
    read_erased,
)
from digest.subscribers.model import Subscriber
from digest.subscribers.reading import (
    list_signature,
    read_statuses,
    scan_subscribers,
)

__all__ = ["Recipients", "fix_recipients", "unreached"]


class _JournalStatuses:
    """The statuses the journal's pending changes give, kept up to date by reading what was appended.

    A change during a send is one line appended to the journal: following it costs
    reading that line, not the journal again and not the list. The whole journal is
    read again only when it was rewritten (a fold) or the list changed.
    """

    def __init__(self, path: Path):
        self.path = path
        self._journal = str(journal_path(path))  # a str: stat-ed before every message
        self.statuses: dict[str, str] = {}
        self._identity: tuple[int, int] | None = None  # (inode, bytes read up to the last whole line)

    def _take(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if change.op == "erase":
                self.statuses[change.key] = "erased"
            elif "status" in change.fields:
                self.statuses[change.key] = str(change.fields["status"])

    def reload(self, signature: Signature) -> None:
        self.statuses = {}
        self._identity = None
        try:
            with journal_path(self.path).open("rb") as handle:
                inode, data = os.fstat(handle.fileno()).st_ino, handle.read()
        except OSError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        self._take(parse_journal(whole, self.path).pending(signature))
        self._identity = (inode, len(whole))

    def follow(self) -> bool:
        """Read the lines appended since; False when the journal was rewritten (reload it instead)."""
        try:
            st = os.stat(self._journal)
        except FileNotFoundError:
            return self._identity is None
        except OSError:
            return True  # nothing new can be read: the statuses known stay
        if self._identity is None or st.st_ino != self._identity[0] or st.st_size < self._identity[1]:
            return False
        inode, offset = self._identity
        if st.st_size == offset:
            return True
        try:
            with journal_path(self.path).open("rb") as handle:
                if os.fstat(handle.fileno()).st_ino != inode:
                    return False
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return True
        whole = data[: data.rfind(b"\n") + 1]
        self._take(parse_journal(whole, self.path).changes)  # an appended change is always pending
        self._identity = (inode, offset + len(whole))
        return True


_FILE_STATUSES: dict[Path, tuple[Signature, dict[str, str]]] = {}  # the last read, shared with forks
_FRESH: dict[Path, Signature] = {}  # a new round's snapshot -> the list file it was read from


class Recipients:
    """One shard's recipients not yet done, from the round's snapshot; statuses re-read as the list changes.

    Who is due was fixed when the round started, so a list saved in place,
    reordered, or deleted and written back while the send runs changes nobody's
    turn. What stops a mail is an explicit non-active status: from the journal,
    from a read of the list file that did not change while it was read (see
    :func:`read_statuses`), or an erasure (the list's erased file). The statuses
    are read when the round starts or resumes, then again only when the list file
    changes; a change in the journal costs reading its new lines. A list missing,
    emptied or unreadable mid-send says nothing about anyone; an address no longer
    listed keeps its last known status, unless it was erased. A resumed round reads
    the list first: who is not on it then (deleted by hand since the round began) is
    not mailed, unless a later read finds them again.
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
        self._signature: object = None  # the list file as last read (None: not read yet)
        self._read = False
        self._listed: dict[str, str] = {}  # every status read from the file, kept when no longer listed
        self._latest: dict[str, str] = {}  # the statuses of the last read of the file
        self._erased: frozenset[str] = frozenset()
        self._seeded = False  # the file is still the one the new round's snapshot was read from
        self._resumed = False  # the first read was of the list itself: who is not on it has left
        self._journal = _JournalStatuses(path)

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
        """Read the statuses again, the list file and the whole journal."""
        self._signature = list_signature(self.path)
        first, self._read = not self._read, True
        cached = _FILE_STATUSES.get(self.path)
        self._seeded = self._signature is not None and _FRESH.get(self.snapshot) == self._signature
        if self._seeded:
            listed: dict[str, str] | None = {}  # everyone due was read as active from this very file
            first = False
        elif cached is not None and cached[0] == self._signature and self._signature is not None:
            listed = cached[1]
        else:
            listed = read_statuses(self.path, self.sections)
            if listed is not None:
                _FILE_STATUSES[self.path] = (self._signature, listed)  # type: ignore[assignment]
        if listed is not None:
            self._listed.update(listed)  # an address no longer listed keeps its last known status
            self._latest = listed
            self._resumed = self._resumed or first
        self._erased = read_erased(self.path)
        self._journal.reload(self._signature)  # type: ignore[arg-type]

    def _update(self) -> None:
        if not self._read or list_signature(self.path) != self._signature:
            self.refresh()
        elif not self._journal.follow():
            self._journal.reload(self._signature)  # type: ignore[arg-type]

    def status(self, key: str) -> str | None:
        """The explicit status of ``key`` as last known (None: nothing says, so still due)."""
        journaled = self._journal.statuses.get(key)
        if journaled:
            return journaled
        if key in self._latest:
            return self._latest[key]
        if self._seeded:  # the file the round's snapshot was just read from: everyone due is active there
            return None
        if self._erased and erased_digest(key) in self._erased:
            return "erased"
        if key in self._listed:
            return self._listed[key]
        return "gone" if self._resumed else None

    def still_active(self, subscriber: Subscriber) -> bool:
        """False once the subscriber is explicitly not active (checked before every message)."""
        self._update()
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
        signature = list_signature(path)
        write_recipients(snapshot, due())
        if signature is not None and list_signature(path) == signature:
            # Everyone due was just read as active from this very file: the round's first
            # status check (here or in a forked sending process) need not read it again.
            _FRESH[snapshot] = signature
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
