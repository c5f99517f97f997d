"""Which issues are published (fed) and which are released (mailed), and why not.

Published: the file exists, is not a draft (``draft: true`` / ``published:
false``), has no fatal lint finding, and is dated today or earlier in the
site's timezone. Feeds carry published issues only.

Released, for email: ``[release] mode = "manual"`` (the default) after ``digest
approve ISSUE`` for exactly the version approved; ``mode = "auto"`` once the file
has not changed for ``settle_minutes`` and lint has no errors. History (issues
already there when digest first ran, or dated before ``[release] since``) is
never mailed automatically. An issue is mailed once: the delivery ledger says
so, and later edits never release it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from digest.config import Config
from digest.ledger import LedgerSummary
from digest.lint import LintReport
from digest.model import Issue, Severity
from digest.state import IssueRecord, RunState

__all__ = [
    "IssueStatus",
    "decide",
    "is_history",
    "is_published",
    "publish_time",
    "published_issues",
    "same_date_conflicts",
]


def is_published(issue: Issue, now: dt.datetime) -> bool:
    """True when readers may see the issue: finished, not a draft, and its date has come."""
    today = now.astimezone(issue.published.tzinfo).date()
    return not issue.draft and not issue.has(Severity.FATAL) and issue.date <= today


def published_issues(issues: list[Issue], now: dt.datetime) -> list[Issue]:
    """Published issues, newest first (by date, then by file name for a stable order)."""
    chosen = [issue for issue in issues if is_published(issue, now)]
    return sorted(chosen, key=lambda issue: (issue.date, issue.stem), reverse=True)


def publish_time(issue: Issue) -> dt.datetime:
    """When a dated issue becomes published: midnight of its date in the site's timezone."""
    return dt.datetime.combine(issue.date, dt.time(0, 0), tzinfo=issue.published.tzinfo)


def is_history(issue_date: dt.date | None, config: Config, state: RunState, *, first_sight: bool) -> bool:
    """History is not news: dated before ``[release] since``, or (without it) there at the first run."""
    since = config.release.since
    if since is not None:
        return issue_date is not None and issue_date < since
    started = state.initialized_at.astimezone(config.site.timezone).date()
    return first_sight or (issue_date is not None and issue_date < started)


@dataclass(frozen=True)
class IssueStatus:
    """Everything ``digest status`` shows and ``digest run`` decides for one issue file."""

    stem: str
    report: LintReport
    record: IssueRecord
    ledger: LedgerSummary
    published: bool
    publication: str  # why (not) published
    released: bool
    release: str  # why (not) released
    wake_at: dt.datetime | None  # when the answer may change by time alone

    @property
    def issue(self) -> Issue | None:
        return self.report.issue

    @property
    def mailing(self) -> str:
        if self.ledger.finished:
            return "sent"
        return "interrupted" if self.ledger.exists else "not started"

    @property
    def should_send(self) -> bool:
        """Released and not yet mailed to the end (an interrupted send resumes)."""
        return self.released and not self.ledger.finished


def decide(
    report: LintReport, record: IssueRecord, ledger: LedgerSummary, config: Config, now: dt.datetime
) -> IssueStatus:
    issue = report.issue
    published, publication, wake = _publication(report, now)
    released, release, settle = _release(issue, record, ledger, config, now, published)
    times = [t for t in (wake, settle) if t is not None]
    return IssueStatus(
        stem=report.path.stem,
        report=report,
        record=record,
        ledger=ledger,
        published=published,
        publication=publication,
        released=released,
        release=release,
        wake_at=min(times) if times else None,
    )


def _publication(report: LintReport, now: dt.datetime) -> tuple[bool, str, dt.datetime | None]:
    issue = report.issue
    if issue is None or any(f.severity is Severity.FATAL for f in report.findings):
        return False, "not an issue yet (fatal lint findings)", None
    if issue.draft:
        return False, "draft", None
    if not is_published(issue, now):
        return False, f"scheduled for {issue.date}", publish_time(issue)
    return True, "published", None


def _release(
    issue: Issue | None,
    record: IssueRecord,
    ledger: LedgerSummary,
    config: Config,
    now: dt.datetime,
    published: bool,
) -> tuple[bool, str, dt.datetime | None]:
    if ledger.finished:
        return False, "mailed", None
    if issue is None or not published:
        return False, "not published", None
    if record.mailed and record.mailed != issue.key:
        return (
            False,
            (
                f"already mailed as {record.mailed}; its date is now {issue.key} "
                f"(digest send {issue.stem} mails it again on purpose)"
            ),
            None,
        )
    if record.held:
        return False, "held (digest approve to release it)", None
    approval = record.approval
    approved = approval is not None and approval.hash == record.hash
    if approval is not None and not approved:
        return False, "changed since it was approved: digest approve it again", None
    if approved:
        return True, "approved", None
    if ledger.exists:
        return True, "interrupted send", None
    if config.release.mode == "manual":
        return False, f"waiting for approval: digest approve {issue.stem}", None
    if record.history:
        return False, f"history: not mailed automatically (digest send {issue.stem} mails it)", None
    if issue.has(Severity.ERROR):
        return False, "lint errors: fix them (or digest approve --force)", None
    settled = dt.datetime.fromisoformat(record.changed_at) + dt.timedelta(
        minutes=config.release.settle_minutes
    )
    if now < settled:
        return False, f"settling until {settled.astimezone(now.tzinfo):%Y-%m-%d %H:%M}", settled
    return True, "settled", None


def same_date_conflicts(statuses: list[IssueStatus]) -> dict[str, str]:
    """Files that claim the same issue date (a copy, a rename): none of them is mailed automatically."""
    by_key: dict[str, list[str]] = {}
    for status in statuses:
        if status.issue is not None and not status.issue.draft:
            by_key.setdefault(status.issue.key, []).append(status.stem)
    twins = {}
    for key, stems in by_key.items():
        if len(stems) > 1:
            for stem in stems:
                others = ", ".join(s for s in stems if s != stem)
                twins[stem] = (
                    f"{others} is dated {key} too: keep one file per issue (digest send mails one on purpose)"
                )
    return twins
