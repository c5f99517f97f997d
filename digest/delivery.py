"""Sending one issue to every active subscriber, exactly once in practice.

The shape is a campaign manager's: a producer streams recipients from the list
into a bounded queue; ``[email] concurrency`` workers each own one connection
and reuse it for up to ``max_per_connection`` messages; one shared rate
limiter; retries with exponential backoff and jitter for 4xx replies, timeouts
and dropped connections; a 5xx marks that recipient failed without stopping the
others. Progress is checkpointed as results come back, not as work is fetched:
a worker appends its outcome to the ledger, fsynced, before it takes the next
recipient, so a crash re-sends at most one message per connection, and that
message keeps its Message-ID.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from digest.config import Config
from digest.errors import DeliveryError, ReleaseError
from digest.feeds import feeds_base_url, permalink
from digest.ledger import Ledger, LedgerSummary, Outcome, ledger_path, read_ledger
from digest.message import MessageFactory, Outgoing
from digest.model import Issue, Severity
from digest.render import DigestRenderer
from digest.subscribers import Subscriber, iter_subscribers, list_signature, update_subscribers
from digest.tokens import load_secret
from digest.transport import Connection, SendFailure, TransportSpec, transport_spec

__all__ = ["RateLimiter", "SendReport", "check_sendable", "mark_bounces", "send_issue", "send_test_copy"]

MAX_BACKOFF = 60.0


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
    already_done: int = 0
    seconds: float = 0.0
    bounced: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)

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
        text = ", ".join(parts) + f" in {self.seconds:.1f}s ({self.rate:.0f} msg/s)"
        if self.bounced:
            text += f"; marked bounced: {', '.join(self.bounced)}"
        if self.deferred:
            text += "; run `digest send` again to retry the deferred ones"
        return text


class RateLimiter:
    """One limiter shared by all workers: at most ``rate`` messages a second (0: no limit)."""

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


def check_sendable(issue: Issue, now: dt.datetime, *, force: bool = False) -> None:
    """Refuse to mail what is not ready: a draft, a future issue, fatal findings; errors unless forced."""
    if issue.has(Severity.FATAL):
        raise ReleaseError("not an issue yet (fatal lint findings): it can be neither fed nor mailed", path=issue.path)
    if issue.draft:
        raise ReleaseError("is a draft (front matter draft/published); publish it first", path=issue.path)
    if issue.date > now.astimezone(issue.published.tzinfo).date() and not force:
        raise ReleaseError(f"is dated {issue.date}, in the future; wait, or use --force", path=issue.path)
    errors = [f for f in issue.findings if f.severity is Severity.ERROR]
    if errors and not force:
        first = errors[0]
        raise ReleaseError(
            f"has {len(errors)} lint error(s), e.g. line {first.line}: {first.message}; "
            "fix them, or mail anyway with --force",
            path=issue.path,
        )


class _Recipients:
    """Active subscribers not yet done, streamed; statuses re-read whenever the list file changes."""

    def __init__(self, path: Path, sections: Collection[str], done: set[str]):
        self.path = path
        self.sections = sections
        self.done = done
        self._signature = list_signature(path)
        self._active: set[str] | None = None  # None: unchanged since the send began

    def __iter__(self) -> Iterator[Subscriber]:
        for subscriber in iter_subscribers(self.path, self.sections):
            if subscriber.active and subscriber.key not in self.done:
                yield subscriber

    def count(self) -> int:
        return sum(1 for _ in self)

    def still_active(self, subscriber: Subscriber) -> bool:
        """False once the subscriber left the list or stopped being active (checked per message)."""
        signature = list_signature(self.path)
        if signature != self._signature:
            self._signature = signature
            self._active = {s.key for s in iter_subscribers(self.path, self.sections) if s.active}
        return self._active is None or subscriber.key in self._active


class _Progress:
    """A rich progress bar on a terminal; a plain line every 10 s otherwise."""

    def __init__(self, total: int, report: SendReport, enabled: bool | None):
        self.report = report
        self.total = total
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar = None
        interactive = sys.stderr.isatty() if enabled is None else enabled
        if interactive and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("sent {task.fields[sent]} failed {task.fields[failed]} · {task.fields[rate]} msg/s"),
                TimeRemainingColumn(),
                transient=True,
            )
            self._task = self._bar.add_task(report.issue, total=total, sent=0, failed=0, rate=0)
            self._bar.start()

    def advance(self) -> None:
        report = self.report
        done = report.sent + report.failed + report.deferred + report.skipped + report.unsubscribed_during
        elapsed = time.monotonic() - self.started
        rate = int(report.sent / elapsed) if elapsed > 0 else 0
        if self._bar is not None:
            self._bar.update(self._task, completed=done, sent=report.sent, failed=report.failed, rate=rate)
        elif time.monotonic() - self._last_line >= 10:
            self._last_line = time.monotonic()
            remaining = self.total - done
            eta = f", about {remaining / rate:.0f}s left" if rate else ""
            print(
                f"{report.issue}: {done}/{self.total}, sent {report.sent}, failed {report.failed}, "
                f"{rate} msg/s{eta}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _Sender:
    """One send of one issue: the queue, the workers and the shared counters."""

    def __init__(self, config: Config, issue: Issue, ledger: Ledger, spec: TransportSpec, round_: int, now: dt.datetime):
        self.config = config
        self.issue = issue
        self.ledger = ledger
        self.spec = spec
        self.round = round_
        secret = load_secret(config.paths.state)
        self.factory = MessageFactory(issue, config, secret, email.utils.format_datetime(now), round_)
        self.renderer = DigestRenderer(issue, config, permalink(config, issue), feeds_base_url(config))
        self.limiter = RateLimiter(config.email.rate)
        self.stop = asyncio.Event()
        self.stop_reason: str | None = None
        self.connection_failures = 0
        self.now = now

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    async def run(self, recipients: _Recipients, report: SendReport, progress: _Progress) -> None:
        concurrency = self.config.email.concurrency
        queue: asyncio.Queue[Subscriber | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def produce() -> None:
            try:
                for subscriber in recipients:
                    if self.stop.is_set():
                        break
                    await queue.put(subscriber)
            finally:
                for _ in range(concurrency):
                    await queue.put(None)

        async def work() -> None:
            connection = self.spec.connection()
            used = 0
            try:
                while (subscriber := await queue.get()) is not None:
                    if self.stop.is_set():
                        continue
                    if not recipients.still_active(subscriber):
                        report.unsubscribed_during += 1
                        progress.advance()
                        continue
                    outcome = await self.deliver(connection, subscriber)
                    if outcome is None:
                        continue
                    await self.ledger.record(outcome)
                    report.add(outcome)
                    progress.advance()
                    if outcome.status == "sent":
                        used += 1
                        if used >= self.config.email.max_per_connection:
                            await connection.close()
                            used = 0
            finally:
                await connection.close()

        await asyncio.gather(produce(), *(work() for _ in range(concurrency)))

    async def deliver(self, connection: Connection, subscriber: Subscriber) -> Outcome | None:
        """Send one message with retries; None when the send stopped before it was done."""
        digest = self.renderer.variant(subscriber.wants())
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if digest is None:
            return Outcome(subscriber.key, "skipped", detail="no items in the chosen sections", round=self.round, at=at)
        message: Outgoing = self.factory.build(subscriber.email, subscriber.name, digest)
        email_cfg = self.config.email
        last: SendFailure | None = None
        for attempt in range(1, email_cfg.max_attempts + 1):
            if self.stop.is_set():
                return None
            await self.limiter.acquire()
            try:
                if not connection.connected:
                    await connection.connect()
                code, reply = await connection.send(self.factory.sender, message.recipient, message.data)
            except SendFailure as failure:
                last = failure
                if failure.kind == "fatal":
                    self.halt(str(failure))
                    return None
                if failure.kind == "permanent":
                    return self._outcome(subscriber, "failed", failure.code, message, str(failure))
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

    def _outcome(self, subscriber: Subscriber, status: str, code: int | None, message: Outgoing, detail: str) -> Outcome:
        return Outcome(
            to=subscriber.key,
            status=status,
            code=code,
            message_id=message.message_id,
            detail=detail,
            round=self.round,
            at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )


def send_issue(
    config: Config,
    issue: Issue,
    now: dt.datetime,
    *,
    resend: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> SendReport:
    """Send (or resume sending) an issue to every active subscriber not yet done."""
    check_sendable(issue, now, force=force)
    spec = transport_spec(config)
    sections = set(config.feeds.sections.values())
    with Ledger(config.paths.state, issue.stem) as ledger:
        summary = ledger.summary()
        round_ = summary.round + 1 if resend and summary.exists else summary.round
        if resend and summary.exists:
            ledger.start_round(round_, now)
            summary = LedgerSummary(round_, {}, summary.rounds_started)
        report = SendReport(issue.stem, round_, already_done=len(summary.done()))
        recipients = _Recipients(config.paths.subscribers, sections, summary.done())
        bar = _Progress(recipients.count(), report, progress)
        sender = _Sender(config, issue, ledger, spec, round_, now)
        started = time.monotonic()
        try:
            asyncio.run(sender.run(recipients, report, bar))
        finally:
            bar.close()
            report.seconds = time.monotonic() - started
    report.bounced = mark_bounces(config)
    if sender.stop_reason:
        raise DeliveryError(
            f"{issue.stem}: stopped: {sender.stop_reason}. So far: {report.summary()} (the ledger keeps it)"
        )
    return report


def mark_bounces(config: Config) -> list[str]:
    """Mark subscribers bounced after ``[email] bounce_after`` permanent failures in a row across issues."""
    streaks: dict[str, int] = {}
    ledgers = sorted((config.paths.state / "ledger").glob("*.jsonl"))
    for path in ledgers:
        for to, outcome in read_ledger(path).outcomes.items():
            if outcome.status == "failed":
                streaks[to] = streaks.get(to, 0) + 1
            elif outcome.status == "sent":
                streaks[to] = 0
    over = {to for to, count in streaks.items() if count >= config.email.bounce_after}
    if not over:
        return []
    marked: list[str] = []

    def change(current):  # type: ignore[no-untyped-def]
        updated = current
        for subscriber in current.subscribers:
            if subscriber.key in over and subscriber.active:
                from dataclasses import replace

                updated = updated.with_subscriber(replace(subscriber, status="bounced"))
                marked.append(subscriber.email)
        return updated

    update_subscribers(config.paths.subscribers, set(config.feeds.sections.values()), change)
    return marked


def send_test_copy(config: Config, issue: Issue, address: str, now: dt.datetime) -> str:
    """One copy marked [TEST] to ``address``, outside the ledger."""
    from digest.subscribers import check_email

    address = check_email(address)
    spec = transport_spec(config)
    factory = MessageFactory(issue, config, load_secret(config.paths.state), email.utils.format_datetime(now))
    digest = DigestRenderer(issue, config, permalink(config, issue), feeds_base_url(config)).variant()
    if digest is None:
        raise ReleaseError("the issue has no items to mail", path=issue.path)
    message = factory.build(address, "", digest, test=True)

    async def one() -> str:
        connection = spec.connection()
        try:
            await connection.connect()
            code, reply = await connection.send(factory.sender, address, message.data)
        except SendFailure as failure:
            raise DeliveryError(f"test copy to {address} not sent: {failure}", code=failure.code) from None
        finally:
            await connection.close()
        return f"test copy sent to {address} via {spec.describe()}: {code} {reply}".strip()

    return asyncio.run(one())


def ledger_file(config: Config, stem: str) -> Path:
    return ledger_path(config.paths.state, stem)
