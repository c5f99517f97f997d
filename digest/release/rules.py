"""Which issues are published (fed) and which are released (mailed), and why not.

Published: the file exists, is not a draft (``draft: true`` / ``published:
false``), has no fatal lint finding, and is dated today or earlier in the
site's timezone. Feeds carry published issues only.

Released, for email: ``[release] mode = "manual"`` (the default) after ``digest
approve ISSUE`` for exactly the version approved; ``mode = "auto"`` once the file
has not changed for ``settle_minutes`` and lint has no errors. History (issues
already there when digest first ran, or dated before ``[release] since``) is
never mailed automatically. With a send hour (``[release] send_at``, or the
issue's own ``send_at``) a released issue waits for it (digest/release/schedule.py);
a send once begun never waits. Two files dated the same day (a copy, a rename)
are not released until one is gone. An issue is mailed once: the delivery
ledger says so, and later edits never release it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from digest.config import Config
from digest.errors import ReleaseError
from digest.newsletter.discover import issue_name
from digest.newsletter.lint import LintReport
from digest.newsletter.model import Finding, Issue, Severity
from digest.release.state import IssueRecord, RunState
from digest.send.ledger import LedgerTally

__all__ = [
    "RELEASE_CHECKS",
    "IssueStatus",
    "Readiness",
    "check_sendable",
    "decide",
    "digest_fits",
    "is_history",
    "is_published",
    "lint_reports",
    "publish_time",
    "published_issues",
    "readiness",
    "refusal",
    "with_same_date_conflicts",
]

NOT_AN_ISSUE = "not an issue yet (fatal lint findings)"


@dataclass(frozen=True)
class Readiness:
    """Whether readers may see an issue yet, and why not."""

    published: bool
    reason: str  # "published", "draft", "scheduled for DATE" or NOT_AN_ISSUE
    wake_at: dt.datetime | None = None  # when only its date is missing: the moment it publishes


def readiness(issue: Issue | None, now: dt.datetime) -> Readiness:
    """Published: finished (no fatal finding), not a draft, and its date has come in the site's timezone."""
    if issue is None or issue.has(Severity.FATAL):
        return Readiness(False, NOT_AN_ISSUE)
    if issue.draft:
        return Readiness(False, "draft")
    if issue.date > now.astimezone(issue.published.tzinfo).date():
        return Readiness(False, f"scheduled for {issue.date}", publish_time(issue))
    return Readiness(True, "published")


def is_published(issue: Issue, now: dt.datetime) -> bool:
    """True when readers may see the issue (see :func:`readiness`)."""
    return readiness(issue, now).published


def refusal(issue: Issue | None, now: dt.datetime, *, force: bool, action: str) -> str | None:
    """Why the editor may not ``action`` (``mail``, ``approve``) this issue, with the fix; None when they may.

    Approving ahead of the date is fine (the mail waits for it); mailing ahead
    of it, or despite lint errors, needs ``--force``.
    """
    if issue is None or issue.has(Severity.FATAL):
        return f"is {NOT_AN_ISSUE}: digest lint shows them"
    if issue.draft:
        return "is a draft: set draft: false (or remove it) first"
    ready = readiness(issue, now)
    if not ready.published and action == "mail" and not force:
        return f"is {ready.reason}, in the future; wait, or mail it anyway with --force"
    errors = [f for f in issue.findings if f.severity is Severity.ERROR]
    if errors and not force:
        first = errors[0]
        return (
            f"has {len(errors)} lint error(s), e.g. line {first.line}: {first.message}; "
            f"fix them, or {action} it anyway with --force"
        )
    return None


def digest_fits(config: Config, issue: Issue, path: Path) -> Finding | None:
    """A lint error when the digest stays over ``max_html_bytes`` however it is shortened.

    Release, status, approval, preview and sending all read issues with this
    check (:data:`RELEASE_CHECKS`), so a digest Gmail would clip is held like any lint error.
    """
    from digest.mail.render import size_finding

    try:
        return size_finding(issue, config, path.stat().st_size)
    except OSError:
        return None


RELEASE_CHECKS = (digest_fits,)


def lint_reports(config: Config, files: list[Path]) -> list[LintReport]:
    """``digest lint``: every finding ``digest status`` counts, for ``files`` or (none) every issue file.

    The whole folder is read as status reads it (a symlink out of it is fatal, the
    release checks run); a file named on the command line is linted where it is,
    with the release checks too.
    """
    from digest.newsletter.catalog import file_report, load_catalog, parse_options
    from digest.newsletter.discover import issue_paths

    if not files:  # the issues folder as status reads it; drafts waiting in drafts/ are not linted
        issues = set(issue_paths(config.paths.issues))
        return [report for report in load_catalog(config, RELEASE_CHECKS).reports if report.path in issues]
    options = parse_options(config)
    return [file_report(config, path, options, RELEASE_CHECKS) for path in files]


def check_sendable(issue: Issue, now: dt.datetime, *, force: bool = False) -> None:
    """Refuse to mail what is not ready: a draft, fatal findings; a future date or errors unless forced."""
    problem = refusal(issue, now, force=force, action="mail")
    if problem:
        raise ReleaseError(problem, path=issue.path)


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
    ledger: LedgerTally
    published: bool
    publication: str  # why (not) published
    released: bool
    release: str  # why (not) released
    wake_at: dt.datetime | None  # when the answer may change by time alone
    held_by_twin: bool = False  # released, but another file claims its date: said on every run

    @property
    def issue(self) -> Issue | None:
        return self.report.issue

    @property
    def should_send(self) -> bool:
        """Released and not yet mailed to the end (an interrupted send resumes)."""
        return self.released and not self.ledger.finished


def decide(
    report: LintReport, record: IssueRecord, ledger: LedgerTally, config: Config, now: dt.datetime
) -> IssueStatus:
    """One file's status: is it published, is it released for mail, and when to look again."""
    issue = report.issue
    ready = readiness(issue, now)
    released, release, settle = _release(issue, record, ledger, config, now, ready.published)
    if released and issue is not None and release in ("approved", "settled") and not ledger.exists:
        released, release, settle = _send_hour(issue, record, config, now, (released, release, settle))
    times = [t for t in (ready.wake_at, settle) if t is not None]
    return IssueStatus(
        stem=issue_name(config.paths.issues, report.path),
        report=report,
        record=record,
        ledger=ledger,
        published=ready.published,
        publication=ready.reason,
        released=released,
        release=release,
        wake_at=min(times) if times else None,
    )


def _release(
    issue: Issue | None,
    record: IssueRecord,
    ledger: LedgerTally,
    config: Config,
    now: dt.datetime,
    published: bool,
) -> tuple[bool, str, dt.datetime | None]:
    if ledger.finished:
        return False, "mailed", None
    if issue is None or not published:
        return False, "not published", None
    if record.mailed == issue.key and not ledger.exists:
        return (
            False,
            f"mailed; its delivery ledger is gone "
            f"(digest send {issue.stem} --resend mails it again on purpose)",
            None,
        )
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


def _send_hour(
    issue: Issue, record: IssueRecord, config: Config, now: dt.datetime, answer: tuple[bool, str, None]
) -> tuple[bool, str, dt.datetime | None]:
    """A released issue waits for its send hour (digest/release/schedule.py); one begun never does."""
    from digest.release.schedule import describe_moment, send_time

    if answer[1] == "approved" and record.approval is not None:
        released_at = dt.datetime.fromisoformat(record.approval.at)
    else:
        minutes = dt.timedelta(minutes=config.release.settle_minutes)
        released_at = dt.datetime.fromisoformat(record.changed_at) + minutes
    moment = send_time(issue, config, released_at)
    if moment is None or now.astimezone(dt.UTC) >= moment.astimezone(dt.UTC):
        return answer
    when = describe_moment(moment, config.site.timezone)
    return False, f"{answer[1]}; scheduled for {when}", moment


def with_same_date_conflicts(statuses: list[IssueStatus]) -> list[IssueStatus]:
    """Files that claim the same issue date (a copy, a rename) share one ledger: none is released.

    Which of them the editor meant is not for digest to guess; ``digest send``
    mails one on purpose.
    """
    by_key: dict[str, list[str]] = {}
    for status in statuses:
        if status.issue is not None and not status.issue.draft:
            by_key.setdefault(status.issue.key, []).append(status.stem)
    result = []
    for status in statuses:
        stems = by_key.get(status.issue.key, []) if status.issue is not None else []
        if len(stems) > 1 and not status.ledger.finished:
            others = ", ".join(stem for stem in stems if stem != status.stem)
            reason = f"{others} is dated {status.issue.key} too: keep one file per issue"
            status = replace(
                status,
                released=False,
                release=f"{reason} (digest send mails one on purpose)",
                held_by_twin=status.released,
            )
        result.append(status)
    return result
