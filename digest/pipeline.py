"""The whole job in one page: parse -> model -> feeds / render -> deliver.

Each function here reads like a step of the story and calls one module per
stage. The CLI and cron call these; tests call them too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from digest.config import Config
from digest.discover import issue_paths
from digest.lint import LintReport, lint_file
from digest.model import Issue
from digest.parse import ParseOptions

__all__ = ["Catalog", "build_feeds_now", "load_catalog", "now_in"]


def now_in(config: Config) -> dt.datetime:
    """The current time in the site's timezone, to the second."""
    return dt.datetime.now(config.site.timezone).replace(microsecond=0)


@dataclass(frozen=True)
class Catalog:
    """Every file in ``[paths] issues``: its lint report, and the issue when it parsed."""

    reports: tuple[LintReport, ...]

    @property
    def issues(self) -> list[Issue]:
        return [report.issue for report in self.reports if report.issue is not None]

    def by_stem(self) -> dict[str, LintReport]:
        return {report.path.stem: report for report in self.reports}


def load_catalog(config: Config, paths: list[Path] | None = None) -> Catalog:
    """Parse every issue file (or the given ones) and keep each file's findings."""
    options = ParseOptions.from_config(config)
    files = issue_paths(config.paths.issues) if paths is None else paths
    return Catalog(tuple(lint_file(path, options) for path in files))


def build_feeds_now(config: Config, now: dt.datetime | None = None):  # type: ignore[no-untyped-def]
    """Parse the issues and build the feeds from the published ones."""
    from digest.feeds import build_feeds
    from digest.release import published_issues

    now = now or now_in(config)
    return build_feeds(published_issues(load_catalog(config).issues, now), config, now)


def load_issue(config: Config, ref: str) -> Issue:
    """One issue by stem or path; a file that is not an issue yet is a clear error."""
    from digest.discover import resolve_issue
    from digest.parse import read_issue

    return read_issue(resolve_issue(config.paths.issues, ref), ParseOptions.from_config(config))


def known_sections(config: Config) -> set[str]:
    """The section slugs a subscriber may choose."""
    return set(config.feeds.sections.values())


def send(
    config: Config, ref: str, *, resend: bool = False, force: bool = False, progress: bool | None = None
):  # type: ignore[no-untyped-def]
    """``digest send ISSUE``: mail one issue to every active subscriber not yet done."""
    from digest.delivery import send_issue

    issue = load_issue(config, ref)
    return send_issue(config, issue, now_in(config), resend=resend, force=force, progress=progress)


# -- the release workflow: digest run / status / approve / hold ---------------------------------


@dataclass
class RunReport:
    """What one ``digest run`` did, in a few lines."""

    lines: list[str]
    failed: bool = False
    busy: bool = False

    def say(self, line: str) -> None:
        self.lines.append(line)


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
        report.busy = True
        report.say("another digest run is in progress; this one exits (nothing done)")
    except DigestError as exc:
        report.failed = True
        report.say(f"error: {exc}")
    return report


def _run_locked(config: Config, now: dt.datetime, report: RunReport) -> None:
    from digest import idle
    from digest.errors import DigestError
    from digest.feeds import build_feeds, describe
    from digest.preview import write_preview
    from digest.release import published_issues

    state_file = config.paths.state / "issues.json"
    inputs = idle.stat_inputs(str(config.path), str(config.paths.issues), str(state_file))
    changed, state_note = scan_issues(config, now)
    if state_note:
        report.say(f"state: {state_note}")
    catalog = load_catalog(config)
    statuses = issue_statuses(config, catalog, now)
    build = build_feeds(published_issues(catalog.issues, now), config, now)
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
        elif status.stem in changed and not status.record.history and not status.ledger.finished:
            report.say(f"{status.stem}: not mailed: {status.release}")
    _remember(config, catalog, now, inputs, report)
    if not report.lines:
        report.say("nothing to do")


def _send_released(config: Config, status, now: dt.datetime, report: RunReport) -> None:  # type: ignore[no-untyped-def]
    from digest.delivery import send_issue
    from digest.errors import DigestError

    approval = status.record.approval
    force = bool(approval and approval.force and approval.hash == status.record.hash)
    try:
        sent = send_issue(config, status.issue, now, force=force, progress=False)
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
    from digest import idle

    statuses = issue_statuses(config, catalog, now)
    waits = [s.wake_at.timestamp() for s in statuses if s.wake_at is not None]
    pending = report.failed or any(s.should_send for s in statuses)
    paths = {"issues": str(config.paths.issues), "state": str(config.paths.state / "issues.json")}
    idle.write_snapshot(str(config.path), paths, inputs, min(waits) if waits else None, pending)


def scan_issues(config: Config, now: dt.datetime) -> tuple[set[str], str]:
    """Record new and changed issue files (by content hash); returns their stems and a state note."""
    import hashlib

    from digest.release import is_history
    from digest.state import IssueRecord, RunState, locked_state

    changed: set[str] = set()
    note = ""
    stamp = now.isoformat()
    with locked_state(config.paths.state) as box:
        state = box[0]
        first_run = state is None
        if state is None:
            state = RunState(initialized=stamp)
        elif state.rebuilt:
            note = state.rebuilt
            first_run = True
        options = ParseOptions.from_config(config)
        seen = set()
        for path in issue_paths(config.paths.issues):
            stem = path.stem
            seen.add(stem)
            st = path.stat()
            record = state.issues.get(stem)
            if record and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns):
                continue
            data = path.read_bytes()
            digest_hash = hashlib.sha256(data).hexdigest()
            if record and record.hash == digest_hash:  # touched, not changed (a checkout, say)
                state = state.with_record(stem, replace(record, size=st.st_size, mtime_ns=st.st_mtime_ns))
                continue
            if record is None:
                history = is_history(_quick_date(data, path, options), config, state, first_sight=first_run)
                record = IssueRecord(digest_hash, st.st_size, st.st_mtime_ns, stamp, stamp, history=history)
            else:
                record = replace(
                    record, hash=digest_hash, size=st.st_size, mtime_ns=st.st_mtime_ns, changed_at=stamp
                )
            state = state.with_record(stem, record)
            changed.add(stem)
        for stem in set(state.issues) - seen:
            state = state.without(stem)
        box[0] = replace(state, rebuilt="")
    return changed, note


def _quick_date(data: bytes, path: Path, options: ParseOptions) -> dt.date | None:
    from digest.errors import ParseError
    from digest.parse import parse_issue

    try:
        return parse_issue(data, path, options).date
    except ParseError:
        return None


def issue_statuses(config: Config, catalog: Catalog, now: dt.datetime) -> list:  # type: ignore[type-arg]
    """Every issue file's publication and release status, oldest first."""
    from digest.ledger import read_ledger
    from digest.release import decide
    from digest.state import load_state

    state = load_state(config.paths.state)
    records = state.issues if state else {}
    statuses = []
    for report in catalog.reports:
        record = records.get(report.path.stem)
        if record is None:
            continue
        ledger = read_ledger(config.paths.state, report.path.stem)
        statuses.append(decide(report, record, ledger, config, now))
    return statuses


def approve(config: Config, ref: str, *, force: bool = False, hold: bool = False) -> str:
    """``digest approve ISSUE`` (or ``hold``): release one version of an issue for mail, or take it back."""
    from digest.errors import ReleaseError
    from digest.model import Severity
    from digest.state import Approval, locked_state

    now = now_in(config)
    scan_issues(config, now)
    issue = load_issue(config, ref)
    stem = issue.stem
    if not hold:
        if issue.has(Severity.FATAL):
            raise ReleaseError(
                "is not an issue yet (fatal lint findings); it cannot be approved", path=issue.path
            )
        if issue.draft:
            raise ReleaseError("is a draft; set draft: false (or remove it) first", path=issue.path)
        errors = [f for f in issue.findings if f.severity is Severity.ERROR]
        if errors and not force:
            listing = "; ".join(f"line {f.line}: {f.message}" for f in errors[:3])
            raise ReleaseError(
                f"has {len(errors)} lint error(s) ({listing}); fix them or approve with --force",
                path=issue.path,
            )
    with locked_state(config.paths.state) as box:
        state = box[0]
        assert state is not None
        record = state.issues[stem]
        if hold:
            record = replace(record, approval=None, held=True)
        else:
            record = replace(record, approval=Approval(record.hash, now.isoformat(), force), held=False)
        box[0] = state.with_record(stem, record)
    if hold:
        return f"{stem}: held; it will not be mailed until approved again"
    when = "on the next digest run" if issue.date <= now.date() else f"on {issue.date}"
    return f"{stem}: approved{' (despite lint errors)' if force else ''}; it will be mailed {when}"


def status_table(config: Config) -> str:
    """``digest status``: one line per issue file."""
    from digest.lint import count_by_severity
    from digest.model import Severity
    from digest.subscribers import iter_subscribers

    now = now_in(config)
    scan_issues(config, now)
    catalog = load_catalog(config)
    statuses = issue_statuses(config, catalog, now)
    active = sum(1 for s in iter_subscribers(config.paths.subscribers, known_sections(config)) if s.active)
    rows = [
        ("issue", "date", "headline", "items", "lint F/E/W", "published", "approved", "sent/failed/total")
    ]
    for status in statuses:
        issue = status.issue
        counts = count_by_severity(status.report.findings)
        lint = f"{counts[Severity.FATAL]}/{counts[Severity.ERROR]}/{counts[Severity.WARNING]}"
        ledger = status.ledger
        sent, failed = ledger.count("sent"), ledger.count("failed")
        remaining = 0 if ledger.finished else max(0, active - len(ledger.done()))
        total = len(ledger.outcomes) + remaining if ledger.exists else active
        rows.append(
            (
                status.stem,
                issue.date.isoformat() if issue else "-",
                _clip(issue.headline if issue else "", 28),
                str(len(issue.items)) if issue else "0",
                lint,
                "yes" if status.published else status.publication,
                _approval(status),
                f"{sent}/{failed}/{total}",
            )
        )
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def _width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _approval(status) -> str:  # type: ignore[no-untyped-def]
    if status.ledger.finished:
        return "mailed"
    if status.released:
        return f"yes ({status.release})"
    return (
        "history"
        if status.record.history and status.release.startswith("history")
        else status.release.split(":")[0]
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
