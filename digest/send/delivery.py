"""Sending one issue to every active subscriber, exactly once in practice.

The shape is a campaign manager's: a producer streams recipients from the list
into a bounded queue; ``[email] concurrency`` workers each own one connection
and reuse it for up to ``max_per_connection`` messages; one rate limiter;
retries with exponential backoff and jitter for 4xx replies, timeouts and
dropped connections. A refusal of the recipient's mailbox (5.1.x, 5.2.x) fails
that recipient only; a reply about the sender (a quota, a rate, a policy: see
:mod:`digest.send.replies`) pauses the whole send with nobody failed, and so do
``max_errors`` unexplained permanent refusals in a row; the next run resumes
where it paused, and ``digest status`` says why. Progress is checkpointed as
results come back, not as work is fetched: a worker appends its outcome to the
ledger, fsynced, before it takes the next recipient, so a crash re-sends at
most one message per connection, and that message keeps its Message-ID.

A large send is split over ``[email] processes`` (one per core by default):
each process takes the recipients whose address hashes to its shard, keeps its
own ledger file, and dies with the parent, so a SIGKILL of ``digest send``
stops all of it at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import math
import multiprocessing
import os
import random
import signal
import sys
import time
import zlib
from collections.abc import Collection, Container, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digest.config import Config
from digest.errors import DeliveryError, DigestError, ReleaseError, SubscriberError
from digest.mail.message import MessageFactory, Outgoing
from digest.mail.render import DigestRenderer
from digest.mail.tokens import load_secret
from digest.newsletter.model import Issue
from digest.send.ledger import (
    LedgerSummary,
    LedgerWriter,
    Outcome,
    RoundScan,
    ledger_path,
    ledger_stems,
    read_ledger,
    read_recipients,
    recipients_path,
    scan_round,
    send_lock,
    shard_sizes,
    write_recipients,
)
from digest.send.replies import note_pause
from digest.send.transport import Connection, SendFailure, send_one, transport_spec
from digest.subscribers.changes import fold_journal, set_statuses
from digest.subscribers.journal import journal_path
from digest.subscribers.keys import KeySet
from digest.subscribers.model import Subscriber, check_email
from digest.subscribers.reading import (
    iter_subscribers,
    journal_statuses,
    list_signature,
    read_statuses,
    scan_subscribers,
)

__all__ = ["RateLimiter", "SendReport", "mark_bounces", "send_issue", "send_test_copy", "stop_reasons"]

MAX_BACKOFF = 60.0
AUTO_PROCESSES_FROM = 1000  # recipients: below this one process is quicker than forking
COUNTERS = ("sent", "failed", "deferred", "skipped", "unsubscribed_during")
UVLOOP_ENV = "DIGEST_UVLOOP"
UNSUBSCRIBED = object()  # what deliver() returns for a subscriber who left during the send


@dataclass
class SendReport:
    """What one ``digest send`` did."""

    issue: str
    round: int
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unsubscribed_during: int = 0
    unreached: int = 0  # due this round, no outcome, not unsubscribed: counted in deferred too
    already_done: int = 0
    seconds: float = 0.0
    processes: int = 1
    bounced: list[str] = field(default_factory=list)
    list_problems: list[str] = field(default_factory=list)  # lines of the subscriber list skipped

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        parts = [f"{self.issue}: sent {self.sent}, failed {self.failed}, deferred {self.deferred}"]
        if self.skipped:
            parts.append(f"skipped {self.skipped} (no items in their sections)")
        if self.already_done:
            parts.append(f"{self.already_done} already done")
        if self.unsubscribed_during:
            parts.append(f"{self.unsubscribed_during} unsubscribed meanwhile")
        if self.unreached:
            parts.append(f"{self.unreached} of the deferred due this round but not reached")
        text = ", ".join(parts) + f" in {self.seconds:.1f}s ({self.rate:.0f} msg/s)"
        if self.bounced:
            text += f"; marked bounced: {', '.join(self.bounced)}"
        if self.deferred:
            text += "; run `digest send` again to retry the deferred ones"
        return text


class RateLimiter:
    """One limiter shared by a process's workers: at most ``rate`` messages a second (0: no limit)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


class _Recipients:
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


@dataclass
class _Shared:
    """What the processes of one send share: outcome counters, the stop flag, and stop reasons."""

    counters: Any  # multiprocessing.Array of COUNTERS
    stop: Any  # multiprocessing.Event
    reasons: Any  # multiprocessing.SimpleQueue of (shard, reason)

    @classmethod
    def create(cls, context: Any) -> _Shared:
        return cls(context.Array("q", len(COUNTERS)), context.Event(), context.SimpleQueue())

    def add(self, name: str) -> None:
        with self.counters.get_lock():
            self.counters[COUNTERS.index(name)] += 1

    def totals(self) -> dict[str, int]:
        with self.counters.get_lock():
            return dict(zip(COUNTERS, self.counters[:], strict=True))


class _Progress:
    """A rich progress bar on a terminal; a plain line every 10 s otherwise."""

    def __init__(self, name: str, total: int, shared: _Shared, enabled: bool | None):
        self.name = name
        self.total = total
        self.shared = shared
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar: Any = None
        if (sys.stderr.isatty() if enabled is None else enabled) and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "sent {task.fields[sent]} failed {task.fields[failed]} · {task.fields[rate]} msg/s"
                ),
                TimeRemainingColumn(),
                transient=True,
            )
            self._task = self._bar.add_task(name, total=total, sent=0, failed=0, rate=0)
            self._bar.start()

    def refresh(self) -> None:
        totals = self.shared.totals()
        done = sum(totals.values())
        elapsed = time.monotonic() - self.started
        rate = int(totals["sent"] / elapsed) if elapsed > 0 else 0
        if self._bar is not None:
            self._bar.update(
                self._task, completed=done, sent=totals["sent"], failed=totals["failed"], rate=rate
            )
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            eta = f", about {(self.total - done) / rate:.0f}s left" if rate else ""
            counts = f"sent {totals['sent']}, failed {totals['failed']}"
            print(
                f"{self.name}: {done}/{self.total}, {counts}, {rate} msg/s{eta}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@dataclass(frozen=True)
class _Doubtful:
    """A permanent refusal that names no cause: held back until the send shows it can deliver."""

    outcome: Outcome


@dataclass(frozen=True)
class _Job:
    """Everything one shard needs to send (passed to a forked process as is)."""

    config: Config
    issue: Issue
    round: int
    date: str
    secret: bytes
    done: KeySet  # digests of who is done this round (shared with the forked processes, not copied)
    shard: int
    shards: int


class _Sender:
    """One shard of one send: its queue, workers, connections and ledger file."""

    def __init__(self, job: _Job, ledger: LedgerWriter, shared: _Shared, progress: _Progress | None):
        config = job.config
        self.job = job
        self.config = config
        self.ledger = ledger
        self.shared = shared
        self.progress = progress
        self.spec = transport_spec(config)
        self.factory = MessageFactory(job.issue, config, job.secret, job.date, job.round)
        self.renderer = DigestRenderer.for_issue(job.issue, config)
        self.concurrency = max(1, config.email.concurrency // job.shards)
        self.limiter = RateLimiter(config.email.rate / job.shards)
        self.stop_reason: str | None = None
        self.connection_failures = 0
        self.held_back: list[Outcome] = []

    def halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.shared.stop.set()

    def count(self, name: str) -> None:
        self.shared.add(name)
        if self.progress is not None:
            self.progress.refresh()

    async def run(self, recipients: _Recipients) -> None:
        """Feed recipients to the workers; if one worker fails the group stops, so nothing waits forever."""
        queue: asyncio.Queue[Subscriber | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        stop = self.shared.stop

        async def work() -> None:
            connection = self.spec.connection()
            used = 0
            try:
                while (subscriber := await queue.get()) is not None:
                    if stop.is_set():
                        continue
                    outcome = await self.deliver(connection, subscriber, recipients)
                    if outcome is UNSUBSCRIBED:
                        self.count("unsubscribed_during")
                        continue
                    if isinstance(outcome, _Doubtful):
                        self.hold(outcome.outcome)
                        continue
                    if not isinstance(outcome, Outcome):
                        continue
                    await self.record(outcome)
                    if outcome.status == "sent":
                        used += 1
                        if used >= self.config.email.max_per_connection:
                            await connection.close()
                            used = 0
            finally:
                await connection.close()

        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(work())
            for subscriber in recipients:
                if stop.is_set():
                    break
                await queue.put(subscriber)
            for _ in range(self.concurrency):
                await queue.put(None)
        if not stop.is_set():  # the last few refused, and no pause: they are failures after all
            await self._record_held_back()

    def hold(self, outcome: Outcome) -> None:
        """Hold back a refusal that names no cause (not the mailbox, not the sender).

        ``max_errors`` of them in a row, at any point of the send, are the
        server's or the sender's problem (a relay denied, a content filter), not
        the list's: the send pauses with them unrecorded, so nobody is failed
        or counted towards ``bounce_after`` and the next run tries them again.
        """
        self.held_back.append(outcome)
        if len(self.held_back) >= self.config.email.max_errors:
            self.halt(
                f"paused: the server refused {len(self.held_back)} recipients in a row permanently "
                f"(last: {outcome.detail}); check [email] from and the relay settings"
            )

    async def record(self, outcome: Outcome) -> None:
        """Write an outcome to the ledger; a delivery shows the refusals held back were the recipients'."""
        if outcome.status == "sent" and not self.shared.stop.is_set():
            await self._record_held_back()
        await self.ledger.record(outcome)
        self.count(outcome.status)

    async def _record_held_back(self) -> None:
        held, self.held_back = self.held_back, []
        for outcome in held:
            await self.ledger.record(outcome)
            self.count(outcome.status)

    async def deliver(
        self, connection: Connection, subscriber: Subscriber, recipients: _Recipients
    ) -> Outcome | _Doubtful | object | None:
        """Send one message with retries: its outcome, ``UNSUBSCRIBED``, or None when the send stopped."""
        digest = self.renderer.variant(subscriber.wants())
        if digest is None:
            return self._outcome(subscriber, "skipped", None, None, "no items in the chosen sections")
        try:
            message = self.factory.build(subscriber.email, subscriber.name, digest)
        except DigestError as exc:  # this recipient's address or name cannot be mailed: the others can
            return self._outcome(subscriber, "failed", None, None, exc.message)
        email_cfg = self.config.email
        last: SendFailure | None = None
        for attempt in range(1, email_cfg.max_attempts + 1):
            if self.shared.stop.is_set():
                return None
            if not recipients.still_active(subscriber):  # checked before every attempt, retries too
                return UNSUBSCRIBED
            await self.limiter.acquire()
            try:
                if not connection.connected:
                    await connection.connect()
                envelope = self.factory.return_path(message.recipient)
                code, reply = await connection.send(envelope, message.recipient, message.data, prepared=True)
            except SendFailure as failure:
                last = failure
                if failure.kind in ("fatal", "pause"):
                    self.halt(f"{'stopped' if failure.kind == 'fatal' else 'paused'}: {failure}")
                    return None
                if failure.kind == "mailbox":
                    return self._outcome(subscriber, "failed", failure.code, message, str(failure))
                if failure.kind == "refused":
                    return _Doubtful(self._outcome(subscriber, "failed", failure.code, message, str(failure)))
                if failure.kind == "connect" or failure.reconnect:
                    self.connection_failures += 1
                    if self.connection_failures >= email_cfg.max_errors:
                        self.halt(
                            f"paused after {self.connection_failures} consecutive connection failures "
                            f"(last: {failure}); check the server, then run the send again"
                        )
                        return None
                if attempt < email_cfg.max_attempts:
                    delay = min(MAX_BACKOFF, email_cfg.retry_base * 2 ** (attempt - 1))
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                continue
            self.connection_failures = 0
            return self._outcome(subscriber, "sent", code, message, reply)
        detail = f"gave up after {email_cfg.max_attempts} attempts: {last}"
        return self._outcome(subscriber, "deferred", last.code if last else None, message, detail)

    def _outcome(
        self, subscriber: Subscriber, status: str, code: int | None, message: Outgoing | None, detail: str
    ) -> Outcome:
        return Outcome(
            to=subscriber.key,
            status=status,
            code=code,
            message_id=message.message_id if message else "",
            detail=detail,
            round=self.job.round,
            at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        )


def _run_shard(job: _Job, shared: _Shared, progress: _Progress | None = None) -> str | None:
    """Send one shard to the end (or until stopped); the stop reason, if any."""
    config = job.config
    snapshot = recipients_path(config.paths.state, job.issue.key, job.round)
    recipients = _Recipients(
        config.paths.subscribers, config.feeds.slugs, job.done, snapshot, job.shard, job.shards
    )
    with LedgerWriter(ledger_path(config.paths.state, job.issue.key, job.shard)) as ledger:
        sender = _Sender(job, ledger, shared, progress)
        try:
            _run_loop(sender.run(recipients))
        except ExceptionGroup as group:  # a worker failed (the ledger, say): say why, stop the others
            shared.stop.set()
            first = group.exceptions[0]
            if not isinstance(first, DigestError):
                raise first from None
            return str(first)
    return sender.stop_reason


def _run_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """On uvloop's event loop when it is installed (``pip install 'digest-newsletter[fast]'``).

    ``DIGEST_UVLOOP=0`` keeps asyncio's own (to compare the two).
    """
    try:
        if os.environ.get(UVLOOP_ENV, "1") == "0":
            raise ImportError
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def _child(job: _Job, shared: _Shared, parent: int) -> None:
    """A forked shard process: it dies with its parent, and reports why it stopped."""
    _die_with_parent(parent)
    try:
        reason = _run_shard(job, shared)
    except Exception as exc:  # reported by the parent as one line
        reason = f"{exc.__class__.__name__}: {exc}"
        shared.stop.set()
    if reason:
        shared.reasons.put((job.shard, reason))


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _process_count(config: Config, recipients: int) -> int:
    wanted = config.email.processes
    if not wanted:
        if recipients < AUTO_PROCESSES_FROM or not sys.platform.startswith("linux"):
            return 1
        wanted = min(os.cpu_count() or 1, 4)
    return max(1, min(wanted, config.email.concurrency, math.ceil(recipients / 100) or 1))


def send_issue(
    config: Config,
    issue: Issue,
    now: dt.datetime,
    *,
    resend: bool = False,
    progress: bool | None = None,
) -> SendReport:
    """Send (or resume sending) an issue to every active subscriber not yet done.

    Whether the issue may be mailed at all is the release stage's call
    (:func:`digest.release.rules.check_sendable`), made before this.
    """
    path, known = config.paths.subscribers, config.feeds.slugs
    fold_journal(path, known)  # changes since the last send into the file, before it is read
    if not path.is_file():
        raise SubscriberError(
            "there is no subscriber list here: create it with the header email,name,sections,status,since "
            "(or `digest subscribers add`); nothing was sent",
            path=path,
        )
    state = config.paths.state
    with send_lock(state, issue.key):
        summary = scan_round(state, issue.key)  # streamed: digests, not an object per recipient
        round_ = summary.round + 1 if resend and summary.exists else summary.round
        if round_ != summary.round:
            with LedgerWriter(ledger_path(state, issue.key)) as main:
                main.start_round(round_, now)
        done = KeySet() if round_ != summary.round else summary.final
        snapshot = recipients_path(state, issue.key, round_)
        problems = _fix_recipients(path, known, snapshot, done)
        recipients = _Recipients(path, known, done, snapshot)
        total = recipients.survey()
        shards = _process_count(config, total)
        report = SendReport(
            issue.stem, round_, already_done=len(done), processes=shards, list_problems=problems
        )
        secret = load_secret(state)
        job = _Job(config, issue, round_, email.utils.format_datetime(now), secret, done, 0, shards)
        context = multiprocessing.get_context("fork" if shards > 1 else None)
        shared = _Shared.create(context)
        started = time.monotonic()
        reasons = _run_all(job, shared, context, total, progress)
        report.seconds = time.monotonic() - started
        for name, value in shared.totals().items():
            setattr(report, name, value)
        final = scan_round(state, issue.key)
        if not reasons:  # a stopped send says so; one that ran to the end accounts for everyone due
            report.unreached = _unreached(recipients, final.reached)
            report.deferred += report.unreached
        if not reasons and not report.deferred:
            with LedgerWriter(ledger_path(state, issue.key)) as main:
                main.finish_round(round_, now, final.tally(), shard_sizes(state, issue.key))
        note_pause(state, issue.key, reasons[0] if reasons else None, now)
    report.bounced = mark_bounces(config, final)
    if reasons:
        left = max(0, total - sum(shared.totals().values()))
        raise DeliveryError(
            f"{issue.stem}: {reasons[0]}; nobody was failed for it, and the {left} not yet mailed wait "
            f"for the next `digest run` (or `digest send {issue.stem}`). So far: {report.summary()} "
            "(the ledger keeps it)"
        )
    return report


def _fix_recipients(path: Path, known: Collection[str], snapshot: Path, done: Container[str]) -> list[str]:
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


def _unreached(recipients: _Recipients, reached: Container[str]) -> int:
    """How many of the round's recipients have no outcome and were not explicitly unsubscribed meanwhile.

    The list's statuses are read only when someone has no outcome (rare), not for every send.
    """
    missing = [s.key for s in recipients.due() if s.key not in reached]
    if not missing:
        return 0
    recipients.refresh()
    return sum(1 for key in missing if recipients.status(key) in (None, "active"))


def _run_all(job: _Job, shared: _Shared, context: Any, total: int, progress: bool | None) -> list[str]:
    if job.shards == 1:
        bar = _Progress(job.issue.stem, total, shared, progress)
        try:
            reason = _run_shard(job, shared, bar)
        finally:
            bar.close()
        return [reason] if reason else []
    processes = [
        context.Process(target=_child, args=(replace(job, shard=k), shared, os.getpid()), daemon=True)
        for k in range(job.shards)
    ]
    for process in processes:
        process.start()
    bar = _Progress(job.issue.stem, total, shared, progress)
    try:
        while any(p.is_alive() for p in processes):
            processes[0].join(0.2)
            bar.refresh()
    finally:
        bar.close()
    said = []
    while not shared.reasons.empty():
        said.append(shared.reasons.get())
    return stop_reasons(said, [p.exitcode for p in processes])


def stop_reasons(said: list[tuple[int, str]], exitcodes: list[int | None]) -> list[str]:
    """Why a split send stopped, a line per sending process that stopped early, in shard order.

    A process that died without a word (killed by the OOM killer, say) is named
    by its exit status, whatever the others said.
    """
    reported: dict[int, str] = {}
    for shard, reason in said:
        reported.setdefault(shard, reason)
    for shard, exitcode in enumerate(exitcodes):
        if exitcode and shard not in reported:
            how = (
                f"was killed by {signal.Signals(-exitcode).name}"
                if exitcode < 0 and -exitcode in signal.valid_signals()
                else f"ended with status {exitcode}"
            )
            which = f"sending process {shard + 1} of {len(exitcodes)}"
            reported[shard] = f"{which} {how} before its part was done"
    return [reported[shard] for shard in sorted(reported)]


def mark_bounces(config: Config, summary: LedgerSummary | RoundScan) -> list[str]:
    """Mark subscribers bounced after ``[email] bounce_after`` permanent refusals in a row across issues.

    Only the addresses refused in this send (``summary``) can have reached the
    limit, so only their lines are read from the other ledgers (found by a scan,
    not by parsing every line). Refusals from before a subscriber (re)joined do
    not count: someone who comes back after a bounce starts with a clean slate.
    """
    refused = summary.refused
    if not refused:
        return []
    known = config.feeds.slugs
    since = {
        s.key: s.since
        for s in iter_subscribers(config.paths.subscribers, known)
        if s.key in refused and s.active
    }
    if not since:
        return []
    history: dict[str, list[Outcome]] = {to: [] for to in since}
    for stem in ledger_stems(config.paths.state):
        for to, outcome in read_ledger(config.paths.state, stem, only=since).outcomes.items():
            history[to].append(outcome)
    limit = config.email.bounce_after
    over = {to: "bounced" for to in since if _refusals_in_a_row(history[to], since[to]) >= limit}
    return [s.email for s in set_statuses(config.paths.subscribers, known, over)] if over else []


def _refusals_in_a_row(outcomes: list[Outcome], since: str) -> int:
    count = 0
    for outcome in sorted(outcomes, key=lambda o: o.at):
        if outcome.at[:10] < since[:10]:
            continue
        if outcome.refused:
            count += 1
        elif outcome.status == "sent":
            count = 0
    return count


def send_test_copy(config: Config, issue: Issue, address: str, now: dt.datetime) -> str:
    """One copy marked [TEST] to ``address``, outside the ledger."""
    address = check_email(address)
    factory = MessageFactory(issue, config, load_secret(config.paths.state), email.utils.format_datetime(now))
    digest = DigestRenderer.for_issue(issue, config).variant()
    if digest is None:
        raise ReleaseError("the issue has no items to mail", path=issue.path)
    message = factory.build(address, "", digest, test=True)
    try:
        receipt = send_one(config, factory.sender, address, message.data)
    except SendFailure as failure:
        raise DeliveryError(f"test copy to {address} not sent: {failure}", code=failure.code) from None
    return f"test copy sent to {address} {receipt}"
