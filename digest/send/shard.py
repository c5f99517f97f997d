"""One shard of a send: its queue, its workers and their connections, its ledger file.

A producer streams the shard's recipients into a bounded queue; ``[email] concurrency``
workers each own one connection and reuse it; one rate limiter; retries with backoff.
A worker's outcome is appended to the ledger and fsynced while the next message
goes out; only that message's final dot waits for it (a server delivers nothing it has
not seen the end of), so a kill re-sends at most one message per connection. A shard
runs in the sending process itself or in a forked child that dies with its parent
(:func:`child_process`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import random
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from digest.config import Config
from digest.errors import DigestError
from digest.mail.message import MessageFactory, Outgoing
from digest.mail.render import DigestRenderer
from digest.newsletter.model import Issue
from digest.send.ledger import (
    Outcome,
    ledger_path,
    recipients_path,
)
from digest.send.ledger_writer import LedgerWriter
from digest.send.recipients import Recipients
from digest.send.transport import Connection, SendFailure, transport_spec
from digest.subscribers.keys import KeySet
from digest.subscribers.model import Subscriber

__all__ = ["COUNTERS", "Job", "Progress", "RateLimiter", "Shared", "child_process", "run_shard"]


MAX_BACKOFF = 60.0
SESSION_ENDS_PER_MESSAGE = 2  # reconnects after "421 too many messages" that cost a message no attempt
NOBODY_REACHED_LIMIT = 50  # mailbox refusals in a row before anyone of the round was reached: a pause
COUNTERS = ("sent", "failed", "deferred", "skipped", "unsubscribed_during")
UVLOOP_ENV = "DIGEST_UVLOOP"
UNSUBSCRIBED = object()  # what deliver() returns for a subscriber who left during the send


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


@dataclass
class Shared:
    """What the processes of one send share: outcome counters, the stop flag, and stop reasons."""

    counters: Any  # multiprocessing.Array of COUNTERS
    stop: Any  # multiprocessing.Event
    reasons: Any  # multiprocessing.SimpleQueue of (shard, reason)

    @classmethod
    def create(cls, context: Any) -> Shared:
        return cls(context.Array("q", len(COUNTERS)), context.Event(), context.SimpleQueue())

    def add(self, name: str) -> None:
        with self.counters.get_lock():
            self.counters[COUNTERS.index(name)] += 1

    def totals(self) -> dict[str, int]:
        with self.counters.get_lock():
            return dict(zip(COUNTERS, self.counters[:], strict=True))


class Progress:
    """A rich progress bar on a terminal; a plain line every 10 s otherwise."""

    def __init__(self, name: str, total: int, shared: Shared, enabled: bool | None, note: str = ""):
        self.name = name
        self.total = total
        self.shared = shared
        self.note = note  # said at the end of every line (a transport that delivers nowhere real)
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
            self._task = self._bar.add_task(name + note, total=total, sent=0, failed=0, rate=0)
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
                f"{self.name}: {done}/{self.total}, {counts}, {rate} msg/s{eta}{self.note}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@dataclass(frozen=True)
class Doubtful:
    """A permanent refusal held back until the send shows it can deliver.

    ``unexplained``: it names no cause; otherwise it names the mailbox, but came
    before anyone of the round was reached, when it may as well be the relay's.
    """

    outcome: Outcome
    unexplained: bool = True


@dataclass(frozen=True)
class Job:
    """Everything one shard needs to send (passed to a forked process as is)."""

    config: Config
    issue: Issue
    round: int
    date: str
    secret: bytes
    done: KeySet  # digests of who is done this round (shared with the forked processes, not copied)
    shard: int
    shards: int
    delivered_before: int = 0  # messages of this round delivered by earlier runs


class Sender:
    """One shard of one send: its queue, workers, connections and ledger file."""

    def __init__(self, job: Job, ledger: LedgerWriter, shared: Shared, progress: Progress | None):
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
        self.held_back: list[Doubtful] = []

    def halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.shared.stop.set()

    def count(self, name: str) -> None:
        self.shared.add(name)
        if self.progress is not None:
            self.progress.refresh()

    async def run(self, recipients: Recipients) -> None:
        """Feed recipients to the workers; if one worker fails the group stops, so nothing waits forever."""
        queue: asyncio.Queue[Subscriber | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        stop = self.shared.stop

        async def work() -> None:
            connection = self.spec.connection()
            used = 0
            loop = asyncio.get_running_loop()  # once: asking for it costs a system call (getpid)
            recording: asyncio.Future[None] | None = None  # the last outcome, being made durable
            try:
                while (subscriber := await queue.get()) is not None:
                    if stop.is_set():
                        continue
                    # The next message goes out while the last outcome is fsynced; its final dot
                    # only once that outcome is on disk, so a kill re-sends one message at most.
                    durable = _durable(recording, loop)
                    outcome = await self.deliver(connection, subscriber, recipients, durable)
                    if recording is not None:
                        await recording  # a ledger that cannot be written stops the send here
                        recording = None
                    if outcome is UNSUBSCRIBED:
                        self.count("unsubscribed_during")
                        continue
                    if isinstance(outcome, Outcome) and self._refused_before_anyone(outcome):
                        outcome = Doubtful(outcome, unexplained=False)
                    if isinstance(outcome, Doubtful):
                        self.hold(outcome)
                        continue
                    if not isinstance(outcome, Outcome):
                        continue
                    recording = self.record(outcome)
                    if outcome.status == "sent":
                        used += 1
                        if used >= self.config.email.max_per_connection:
                            await connection.close()
                            used = 0
                if recording is not None:
                    await recording
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
        if stop.is_set():
            return
        if self.held_back and self.nobody_reached():  # every recipient so far refused: the sender's problem
            self.halt(self._nobody_reached_reason())
        else:  # the last few refused, after deliveries: they are failures after all
            await self._record_held_back()

    def _refused_before_anyone(self, outcome: Outcome) -> bool:
        """A server's refusal of a mailbox (not a message digest could not build) while nobody was reached."""
        return outcome.status == "failed" and outcome.code is not None and self.nobody_reached()

    def nobody_reached(self) -> bool:
        """No message of this round has been delivered yet, by this run or an earlier one."""
        return not self.job.delivered_before and not self.shared.totals()["sent"]

    def hold(self, doubtful: Doubtful) -> None:
        """Hold back a refusal until a delivery shows the recipients are to blame.

        ``max_errors`` refusals in a row that name no cause (not the mailbox, not
        the sender), at any point of the send, are the server's or the sender's
        problem (a relay denied, a content filter), not the list's. Refusals that
        name the mailbox are held only while nobody of the round has been
        reached: a relay that refuses every recipient looks like a list of dead
        addresses, and a list of a few is not told apart from it by counting.
        Either way the send pauses with them unrecorded, so nobody is failed or
        counted towards ``bounce_after`` and the next run tries them again.
        """
        self.held_back.append(doubtful)
        unexplained = sum(1 for held in self.held_back if held.unexplained)
        if unexplained >= self.config.email.max_errors:
            self.halt(
                f"paused: the server refused {unexplained} recipients in a row permanently "
                f"(last: {doubtful.outcome.detail}); check [email] from and the relay settings"
            )
        elif len(self.held_back) >= NOBODY_REACHED_LIMIT:
            self.halt(self._nobody_reached_reason())

    def _nobody_reached_reason(self) -> str:
        last = self.held_back[-1].outcome.detail
        return (
            f"paused: the server refused every recipient so far ({len(self.held_back)}, none delivered; "
            f"last: {last}); a relay that refuses everyone is the sender's problem: check [email] from, "
            "the relay's settings and whether it has verified the sender"
        )

    def record(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue an outcome for the ledger; the future is done once it is on disk, and counted then.

        A delivery shows the refusals held back were the recipients': they go first.
        """
        held = self._take_held_back() if outcome.status == "sent" and not self.shared.stop.is_set() else []
        return self._queue([*held, outcome])

    async def _record_held_back(self) -> None:
        if held := self._take_held_back():
            await self._queue(held)

    def _take_held_back(self) -> list[Outcome]:
        held, self.held_back = self.held_back, []
        return [doubtful.outcome for doubtful in held]

    def _queue(self, outcomes: list[Outcome]) -> asyncio.Future[None]:
        """Append outcomes to the ledger; the future is done once all are on disk, each counted as it is."""
        queued = []
        for each in outcomes:
            durable = self.ledger.append(each)
            durable.add_done_callback(functools.partial(self._counted, each.status))
            queued.append(durable)
        return queued[0] if len(queued) == 1 else asyncio.gather(*queued)

    def _counted(self, status: str, durable: asyncio.Future[None]) -> None:
        if not durable.cancelled() and durable.exception() is None:
            self.count(status)

    async def deliver(
        self,
        connection: Connection,
        subscriber: Subscriber,
        recipients: Recipients,
        before_end: asyncio.Future[bool] | None = None,
    ) -> Outcome | Doubtful | object | None:
        """Send one message with retries: its outcome, ``UNSUBSCRIBED``, or None when the send stopped.

        ``before_end``: whether the worker's last outcome was made durable (the
        message's final dot waits for it).
        """
        digest = self.renderer.variant(subscriber.wants())
        if digest is None:
            return self._outcome(subscriber, "skipped", None, None, "no items in the chosen sections")
        try:
            message = self.factory.build(subscriber.email, subscriber.name, digest)
        except DigestError as exc:  # this recipient's address or name cannot be mailed: the others can
            return self._outcome(subscriber, "failed", None, None, exc.message)
        email_cfg = self.config.email
        last: SendFailure | None = None
        attempt, session_ends = 0, 0
        while attempt < email_cfg.max_attempts:
            attempt += 1
            if self.shared.stop.is_set() or (before_end and before_end.done() and not before_end.result()):
                return None
            if not recipients.still_active(subscriber):  # checked before every attempt, retries too
                return UNSUBSCRIBED
            await self.limiter.acquire()
            try:
                if not connection.connected:
                    await connection.connect()
                envelope = self.factory.return_path(message.recipient)
                code, reply = await connection.send(
                    envelope, message.recipient, message.parts, prepared=True, before_end=before_end
                )
            except SendFailure as failure:
                last = failure
                if failure.kind == "session_end" and session_ends < SESSION_ENDS_PER_MESSAGE:
                    session_ends += 1  # the server closed a session that had delivered: a new one goes on
                    attempt -= 1
                    continue
                if failure.kind in ("fatal", "pause"):
                    self.halt(f"{'stopped' if failure.kind == 'fatal' else 'paused'}: {failure}")
                    return None
                if failure.kind == "mailbox":
                    return self._outcome(subscriber, "failed", failure.code, message, str(failure))
                if failure.kind == "refused":
                    return Doubtful(self._outcome(subscriber, "failed", failure.code, message, str(failure)))
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


def _durable(
    recording: asyncio.Future[None] | None, loop: asyncio.AbstractEventLoop
) -> asyncio.Future[bool] | None:
    """True once ``recording`` has made its outcome durable; False when it failed (or was cancelled)."""
    if recording is None:
        return None
    durable: asyncio.Future[bool] = loop.create_future()

    def settle(recorded: asyncio.Future[None]) -> None:
        if not durable.done():
            durable.set_result(not recorded.cancelled() and recorded.exception() is None)

    recording.add_done_callback(settle)
    return durable


def run_shard(job: Job, shared: Shared, progress: Progress | None = None) -> str | None:
    """Send one shard to the end (or until stopped); the stop reason, if any."""
    config = job.config
    snapshot = recipients_path(config.paths.state, job.issue.key, job.round)
    recipients = Recipients(
        config.paths.subscribers, config.feeds.slugs, job.done, snapshot, job.shard, job.shards
    )
    with LedgerWriter(ledger_path(config.paths.state, job.issue.key, job.shard)) as ledger:
        sender = Sender(job, ledger, shared, progress)
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


def child_process(job: Job, shared: Shared, parent: int) -> None:
    """A forked shard process: it dies with its parent, and reports why it stopped."""
    _die_with_parent(parent)
    try:
        reason = run_shard(job, shared)
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
