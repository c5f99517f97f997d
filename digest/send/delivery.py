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
results come back, not as work is fetched: a worker's outcome is appended to the
ledger and fsynced before the body of its next message goes, so a crash re-sends
at most one message per connection, and that message keeps its Message-ID.

A large send is split over ``[email] processes`` (by default one per core, less one
for a relay on this machine):
each process takes the recipients whose address hashes to its shard, keeps its
own ledger file, and dies with the parent, so a SIGKILL of ``digest send``
stops all of it at once.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digest.config import Config
from digest.errors import DeliveryError, ReleaseError, SubscriberError
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer
from digest.mail.tokens import load_secret
from digest.newsletter.model import Issue
from digest.send.ledger import (
    FINAL,
    LedgerSummary,
    LedgerTally,
    Outcome,
    RoundScan,
    ledger_path,
    ledger_stems,
    read_due,
    read_ledger,
    recipients_path,
    scan_round,
    send_lock,
    shard_sizes,
)
from digest.send.ledger_writer import LedgerWriter
from digest.send.recipients import Recipients, fix_recipients, unreached
from digest.send.replies import note_pause
from digest.send.shard import Job, Progress, Shared, child_process, run_shard
from digest.send.transport import SendFailure, nowhere_note, send_one, transport_spec
from digest.subscribers.changes import fold_journal, set_statuses
from digest.subscribers.keys import KeySet
from digest.subscribers.model import check_email
from digest.subscribers.reading import (
    iter_subscribers,
)

__all__ = ["SendReport", "mark_bounces", "send_issue", "send_test_copy", "stop_reasons"]

AUTO_PROCESSES_FROM = 1000  # recipients: below this one process is quicker than forking


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
    nowhere: str = ""  # what a transport that delivers nowhere real adds to every line

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
        return text + self.nowhere


def _process_count(config: Config, recipients: int) -> int:
    """``[email] processes``, or by default one per core (at most 4) for a large send.

    A relay on this machine (``smtp://127.0.0.1``, a local postfix) takes every
    message digest sends and needs a core of its own to keep up, so it is left one.
    """
    wanted = config.email.processes
    if not wanted:
        if recipients < AUTO_PROCESSES_FROM or not sys.platform.startswith("linux"):
            return 1
        cores = _cores()
        wanted = min(cores - 1 if transport_spec(config).on_this_machine else cores, 4)
    return max(1, min(wanted, config.email.concurrency, math.ceil(recipients / 100) or 1))


def _cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
        fresh = not snapshot.exists()
        problems = fix_recipients(path, known, snapshot, done)
        recipients = Recipients(path, known, done, snapshot)
        recipients.refresh()  # the statuses, read once here and shared with the forked sending processes
        written = read_due(snapshot) if fresh else None  # a new snapshot holds only those still to send
        total = recipients.survey() if written is None else written
        shards = _process_count(config, total)
        report = SendReport(
            issue.stem, round_, already_done=len(done), processes=shards, list_problems=problems
        )
        report.nowhere = nowhere_note(config)
        secret = load_secret(state)
        before = summary.tally().counts if round_ == summary.round else {}  # outcomes of earlier runs
        delivered = before.get("sent", 0)
        date = email.utils.format_datetime(now)
        job = Job(config, issue, round_, date, secret, done, 0, shards, delivered_before=delivered)
        context = multiprocessing.get_context("fork" if shards > 1 else None)
        shared = Shared.create(context)
        started = time.monotonic()
        reasons = _run_all(job, shared, context, total, progress)
        report.seconds = time.monotonic() - started
        for name, value in shared.totals().items():
            setattr(report, name, value)
        earlier = bool(before)
        final = _close_round(state, issue.key, recipients, report, total, reasons, earlier=earlier, now=now)
        note_pause(state, issue.key, reasons[0] if reasons else None, now)
    report.bounced = mark_bounces(config, final) if final is not None else []
    if reasons:
        left = max(0, total - sum(shared.totals().values()))
        raise DeliveryError(
            f"{issue.stem}: {reasons[0]}; nobody was failed for it, and the {left} not yet mailed wait "
            f"for the next `digest run` (or `digest send {issue.stem}`). So far: {report.summary()} "
            "(the ledger keeps it)"
        )
    return report


def _close_round(
    state: Path,
    key: str,
    recipients: Recipients,
    report: SendReport,
    total: int,
    reasons: list[str],
    *,
    earlier: bool,
    now: dt.datetime,
) -> RoundScan | None:
    """Account for everyone due and mark a round that ran to the end; the ledger as read back, if it was.

    A run that began the round's outcomes, took up everyone due, answered them
    all and had nobody refused knows the round's counts from its own counters,
    so the ledger is not read again.
    """
    whole = not reasons and _all_answered(report, total)
    final = None
    if not whole or report.failed or earlier:
        final = scan_round(state, key)
        if not reasons and not whole:
            # a stopped send says so; one that ran to the end accounts for everyone due
            report.unreached = unreached(recipients, final.reached)
            report.deferred += report.unreached
    if not reasons and not report.deferred:
        counted = {status: n for status in FINAL if (n := getattr(report, status))}
        tally = final.tally() if final is not None else LedgerTally(report.round, counted, exists=True)
        with LedgerWriter(ledger_path(state, key)) as main:
            main.finish_round(report.round, now, tally, shard_sizes(state, key))
    return final


def _all_answered(report: SendReport, total: int) -> bool:
    """Every recipient this run took up has an outcome, and nobody left meanwhile: none is unreached.

    Otherwise the round's recipients are read again to find who has no outcome.
    """
    outcomes = report.sent + report.failed + report.deferred + report.skipped
    return not report.unsubscribed_during and outcomes == total


def _run_all(job: Job, shared: Shared, context: Any, total: int, progress: bool | None) -> list[str]:
    if job.shards == 1:
        bar = Progress(job.issue.stem, total, shared, progress, nowhere_note(job.config))
        try:
            reason = run_shard(job, shared, bar)
        finally:
            bar.close()
        return [reason] if reason else []
    processes = [
        context.Process(target=child_process, args=(replace(job, shard=k), shared, os.getpid()), daemon=True)
        for k in range(job.shards)
    ]
    for process in processes:
        process.start()
    bar = Progress(job.issue.stem, total, shared, progress, nowhere_note(job.config))
    try:
        while running := [p.sentinel for p in processes if p.exitcode is None]:
            multiprocessing.connection.wait(running, 0.2)  # sleeps until one ends, or the bar is due
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
