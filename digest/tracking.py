"""What digest has seen of each issue file, and the editor's approvals.

The I/O around :mod:`digest.release`'s pure decisions: :func:`scan_issues`
records new and changed files in the state, :func:`issue_statuses` joins
files, state and ledgers into one status per issue, :func:`approve` records
the editor's go-ahead (or hold).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace
from pathlib import Path

from digest.config import Config
from digest.discover import issue_paths
from digest.errors import ParseError, ReleaseError
from digest.ledger import read_ledger
from digest.model import Severity
from digest.parse import ParseOptions, parse_issue
from digest.pipeline import Catalog, load_issue, now_in
from digest.release import IssueStatus, decide, is_history
from digest.state import Approval, IssueRecord, RunState, load_state, locked_state

__all__ = ["approve", "issue_statuses", "remember_mailed", "scan_issues"]


def scan_issues(config: Config, now: dt.datetime) -> tuple[set[str], str]:
    """Record new and changed issue files (by content hash); returns their stems and a state note."""
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
    try:
        return parse_issue(data, path, options).date
    except ParseError:
        return None


def issue_statuses(config: Config, catalog: Catalog, now: dt.datetime) -> list[IssueStatus]:
    """Every issue file's publication and release status, oldest first."""
    state = load_state(config.paths.state)
    records = state.issues if state else {}
    statuses = []
    for report in catalog.reports:
        record = records.get(report.path.stem)
        if record is None:
            continue
        key = report.issue.key if report.issue is not None else report.path.stem
        ledger = read_ledger(config.paths.state, key)
        statuses.append(decide(report, record, ledger, config, now))
    return statuses


def approve(config: Config, ref: str, *, force: bool = False, hold: bool = False) -> str:
    """``digest approve ISSUE`` (or ``hold``): release one version of an issue for mail, or take it back."""
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
        record = state.issues.get(stem) if state is not None else None
        if state is None or record is None:
            raise ReleaseError(
                f"is not in [paths] issues ({config.paths.issues}): only the newsletter's files are approved",
                path=issue.path,
            )
        if hold:
            record = replace(record, approval=None, held=True)
        else:
            record = replace(record, approval=Approval(record.hash, now.isoformat(), force), held=False)
        box[0] = state.with_record(stem, record)
    if hold:
        return f"{stem}: held; it will not be mailed until approved again"
    when = "on the next digest run" if issue.date <= now.date() else f"on {issue.date}"
    return f"{stem}: approved{' (despite lint errors)' if force else ''}; it will be mailed {when}"


def remember_mailed(config: Config, statuses: list[IssueStatus]) -> None:
    """Note in each file's record the date it was mailed as, so a later date fix is not news."""
    finished = {s.stem: s.issue.key for s in statuses if s.issue is not None and s.ledger.finished}
    if not any(s.record.mailed != finished.get(s.stem, s.record.mailed) for s in statuses):
        return
    with locked_state(config.paths.state) as box:
        state = box[0]
        if state is None:
            return
        for stem, key in finished.items():
            record = state.issues.get(stem)
            if record is not None and record.mailed != key:
                state = state.with_record(stem, replace(record, mailed=key))
        box[0] = state
