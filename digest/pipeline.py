"""The whole job in one page: parse -> model -> feeds / render -> deliver.

Each function here reads like a step of the story and calls one module per
stage. The CLI and cron call these; tests call them too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.config import Config
from digest.newsletter.catalog import Catalog, load_catalog, load_issue, now_in
from digest.release.rules import RELEASE_CHECKS
from digest.release.state import state_path

if TYPE_CHECKING:
    from digest.feeds.build import FeedBuild
    from digest.newsletter.model import Issue
    from digest.release.rules import IssueStatus
    from digest.send.delivery import SendReport

__all__ = ["NOTHING_TO_DO", "RunReport", "build_feeds_now", "mail_issue", "run_once", "send"]

NOTHING_TO_DO = "nothing to do"  # the idle path (digest/entry.py) prints the same line


def build_feeds_now(config: Config, now: dt.datetime | None = None) -> FeedBuild:
    """Parse the issues and build the feeds from the published ones."""
    from digest.feeds.build import build_feeds
    from digest.release.rules import published_issues

    now = now or now_in(config)
    # No release checks: whether a digest fits the mail limit changes nothing in a feed (and costs an
    # MJML compile per large issue); what is published depends only on fatal findings, drafts and dates.
    return build_feeds(published_issues(load_catalog(config).issues, now), config, now)


def send(
    config: Config, ref: str, *, resend: bool = False, force: bool = False, progress: bool | None = None
) -> SendReport:
    """``digest send ISSUE``: mail one issue to every active subscriber not yet done."""
    issue = load_issue(config, ref, RELEASE_CHECKS)
    return mail_issue(config, issue, now_in(config), resend=resend, force=force, progress=progress)


def mail_issue(
    config: Config,
    issue: Issue,
    now: dt.datetime,
    *,
    resend: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> SendReport:
    """Mail an issue the release rules allow (a future date or lint errors need ``force``)."""
    from digest.release.rules import check_sendable
    from digest.send.delivery import send_issue

    check_sendable(issue, now, force=force)
    return send_issue(config, issue, now, resend=resend, progress=progress)


# -- the release workflow: digest run / status / approve / hold ---------------------------------


@dataclass
class RunReport:
    """What one ``digest run`` did, in a few lines."""

    lines: list[str]
    failed: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)

    @property
    def idle(self) -> bool:
        """Nothing happened: what ``--quiet`` keeps quiet about."""
        return self.lines == [NOTHING_TO_DO]


def run_once(config: Config, now: dt.datetime | None = None) -> RunReport:
    """One idempotent pass for cron: scan, feed, preview, send what is released, remember.

    1. note new and changed issue files (content hash) in the state;
    2. rebuild the feeds from the published issues (only changed files are written);
    3. write previews of new and changed issues;
    4. send every released issue not yet mailed, resuming an interrupted send;
    5. leave a snapshot so the next idle cron tick exits at once.
    """
    from digest.errors import DigestError, LockBusy
    from digest.fsutil import file_lock

    now = now or now_in(config)
    report = RunReport([])
    try:
        with file_lock(config.paths.state / "run.lock", what="digest run", wait=0):
            _run_locked(config, now, report)
    except LockBusy:
        report.say("another digest run is in progress; this one exits (nothing done)")
    except DigestError as exc:
        report.failed = True
        report.say(f"error: {exc}")
    return report


def _run_locked(config: Config, now: dt.datetime, report: RunReport) -> None:
    from digest.errors import DigestError
    from digest.feeds.build import build_feeds, describe
    from digest.release import idle
    from digest.release.rules import published_issues
    from digest.release.tracking import issue_statuses, scan_issues
    from digest.web.preview import write_preview

    inputs = idle.stat_inputs(str(config.path), str(config.paths.issues), str(state_path(config.paths.state)))
    if config.bounces.mailbox:
        _read_bounces(config, report)
    catalog = load_catalog(config, RELEASE_CHECKS)
    changed, state_note = scan_issues(config, catalog, now)
    if state_note:
        report.say(f"state: {state_note}")
    statuses = issue_statuses(config, catalog, now)
    build = build_feeds(published_issues(catalog.issues, now), config, now)
    if build.warning is not None:
        report.say(f"warning: {build.warning}")
    if build.written:
        report.say(describe(build))
    for status in statuses:
        if status.stem in changed and status.issue is not None and not status.record.history:
            try:
                preview = write_preview(config, status.issue, now)
            except DigestError as exc:
                report.say(f"preview {status.stem}: {exc.message}")
                continue
            report.say(f"preview {status.stem}: {preview.directory} ({preview.html_bytes / 1024:.0f} KB)")
    for status in statuses:
        if status.should_send:
            _send_released(config, status, now, report)
        elif status.held_by_twin or (
            status.stem in changed and not status.record.history and not status.ledger.finished
        ):
            report.say(f"{status.stem}: not mailed: {status.release}")
    _remember(config, catalog, now, inputs, report)
    if not report.lines:
        report.say(NOTHING_TO_DO)


def _read_bounces(config: Config, report: RunReport) -> None:
    """What came back to ``[bounces] mailbox`` since the last run, before anyone is mailed again."""
    from digest.bounces.record import read_mailbox
    from digest.errors import DigestError

    try:
        lines = read_mailbox(config)
    except DigestError as exc:
        report.failed = True
        report.say(f"bounces: {exc}")
        return
    for line in lines:
        report.say(f"bounces: {line}")


def _send_released(config: Config, status: IssueStatus, now: dt.datetime, report: RunReport) -> None:
    from digest.errors import DigestError

    approval = status.record.approval
    force = bool(approval and approval.force and approval.hash == status.record.hash)
    try:
        sent = mail_issue(config, status.issue, now, force=force, progress=False)
    except DigestError as exc:
        report.failed = True
        report.say(f"send {status.stem}: {exc}")
        return
    report.say(f"sent {sent.summary()}")
    for line in sent.list_problems:
        report.say(f"  skipped {line}")


def _remember(
    config: Config, catalog: Catalog, now: dt.datetime, inputs: dict[str, object], report: RunReport
) -> None:
    """The snapshot for the idle fast path: what this run saw, and when time alone changes things."""
    from digest.release import idle
    from digest.release.tracking import issue_statuses, remember_mailed

    statuses = issue_statuses(config, catalog, now)
    remember_mailed(config, statuses)
    waits = [s.wake_at.timestamp() for s in statuses if s.wake_at is not None]
    pending = report.failed or any(s.should_send for s in statuses)
    pending = pending or bool(config.bounces.mailbox)  # mail comes back at any time: no idle fast path
    paths = {"issues": str(config.paths.issues), "state": str(state_path(config.paths.state))}
    idle.write_snapshot(str(config.path), paths, inputs, min(waits) if waits else None, pending)
