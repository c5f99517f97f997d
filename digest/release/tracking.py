"""What digest has seen of each issue file, and the editor's approvals.

The I/O around :mod:`digest.release.rules`'s pure decisions: :func:`scan_issues`
records new and changed files in the state, :func:`issue_statuses` joins
files, state and ledgers into one status per issue, :func:`approve` records
the editor's go-ahead (or hold).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import replace
from pathlib import Path

from digest.config import Config
from digest.errors import ReleaseError, StateError
from digest.fsutil import write_json
from digest.newsletter.catalog import Catalog, load_catalog, now_in
from digest.newsletter.discover import issue_name, resolve_issue
from digest.release import idle
from digest.release.rules import (
    RELEASE_CHECKS,
    IssueStatus,
    decide,
    is_history,
    refusal,
    with_same_date_conflicts,
)
from digest.release.schedule import describe_moment, send_time
from digest.release.state import (
    Approval,
    IssueRecord,
    RunState,
    hold_path,
    load_state,
    locked_state,
    state_path,
)
from digest.send.ledger import ledger_stems, read_tally

__all__ = ["approve", "earlier_run", "issue_statuses", "remember_mailed", "scan_issues"]


def scan_issues(config: Config, catalog: Catalog, now: dt.datetime) -> tuple[set[str], str]:
    """Record new and changed issue files (by content hash); returns their stems and a state note."""
    changed: set[str] = set()
    note = ""
    stamp = now.isoformat()
    with locked_state(config.paths.state) as box:
        state = box[0]
        first_run = state is None
        if state is None:
            state = RunState(initialized=stamp)
            if (evidence := earlier_run(config)) is not None:
                missing = state_path(config.paths.state)
                note = f"{missing} is missing, but digest has run here before ({evidence})"
        elif state.rebuilt:
            note = state.rebuilt
            first_run = True
        recovered = bool(note)
        if recovered:
            note += "; every issue file present is history: digest approve (or digest send) mails one"
        for report in catalog.reports:
            stem = issue_name(config.paths.issues, report.path)
            record = state.issues.get(stem)
            if not report.sha256 or (record and record.hash == report.sha256):
                continue  # unreadable (lint says so), or unchanged
            if record is None:
                date = report.issue.date if report.issue is not None else None
                history = recovered or is_history(date, config, state, first_sight=first_run)
                held = recovered and date is not None and _held(config, report.issue.key)
                record = IssueRecord(report.sha256, stamp, stamp, history=history, held=held)
            else:
                record = replace(record, hash=report.sha256, changed_at=stamp)
            state = state.with_record(stem, record)
            changed.add(stem)
        for stem in set(state.issues) - {issue_name(config.paths.issues, r.path) for r in catalog.reports}:
            state = state.without(stem)
        box[0] = replace(state, rebuilt="")
    return changed, note


def earlier_run(config: Config) -> str | None:
    """What shows that digest ran here before, when its state file is gone; None on a true first run.

    Then the state is rebuilt, not started afresh: ``[release] since`` does not
    decide, since whatever was held, approved or mailed is no longer known.
    """
    state_dir = config.paths.state
    if stems := ledger_stems(state_dir):
        return f"delivery ledgers of {len(stems)} issue(s) in {state_dir / 'ledger'}"
    if any((state_dir / "ledger").glob("*.held")):
        return f"the holds noted in {state_dir / 'ledger'}"
    snapshot = Path(idle.snapshot_path(str(config.path)))
    if snapshot.is_file():
        return f"the snapshot of an earlier digest run, {snapshot}"
    feed = config.paths.feeds / "atom.xml"
    if feed.is_file() and not (state_dir / "feeds.json").exists():
        return f"the feeds it wrote, {feed}, while their state is gone too"
    return None


def _held(config: Config, key: str) -> bool:
    return hold_path(config.paths.state, key).is_file()


def _note_hold(config: Config, key: str, hold: bool, now: dt.datetime) -> None:
    """A hold beside the ledgers survives a lost state file; an approval removes it."""
    path = hold_path(config.paths.state, key)
    if not hold:
        with contextlib.suppress(OSError):  # a hold left behind only errs on the safe side
            path.unlink(missing_ok=True)
        return
    try:
        write_json(path, {"held": True, "at": now.isoformat()})
    except OSError as exc:
        raise StateError(f"cannot note the hold: {exc.strerror or exc}", path=path) from None


def issue_statuses(config: Config, catalog: Catalog, now: dt.datetime) -> list[IssueStatus]:
    """Every issue file's publication and release status, oldest first."""
    state = load_state(config.paths.state)
    records = state.issues if state else {}
    statuses = []
    for report in catalog.reports:
        record = records.get(issue_name(config.paths.issues, report.path))
        if record is None:
            continue
        key = report.issue.key if report.issue is not None else report.path.stem
        ledger = read_tally(config.paths.state, key)
        statuses.append(decide(report, record, ledger, config, now))
    return with_same_date_conflicts(statuses)


def approve(config: Config, ref: str, *, force: bool = False, hold: bool = False) -> str:
    """``digest approve ISSUE`` (or ``hold``): release one version of an issue for mail, or take it back.

    The approval is for the bytes that were just checked: an edit after it
    needs a new approval.
    """
    now = now_in(config)
    catalog = load_catalog(config, RELEASE_CHECKS)
    scan_issues(config, catalog, now)
    path = resolve_issue(config.paths.issues, ref)
    report = catalog.report_for(path)
    if report is None:
        raise ReleaseError(
            f"is not in [paths] issues ({config.paths.issues}): only the newsletter's files are approved",
            path=path,
        )
    stem = issue_name(config.paths.issues, path)
    if not hold and (problem := refusal(report.issue, now, force=force, action="approve")):
        raise ReleaseError(problem, path=path)
    with locked_state(config.paths.state) as box:
        state = box[0]
        record = state.issues.get(stem) if state is not None else None
        if state is None or record is None:
            raise ReleaseError("cannot be read; digest lint shows why", path=path)
        if hold:
            record = replace(record, approval=None, held=True)
        else:
            record = replace(record, approval=Approval(report.sha256, now.isoformat(), force), held=False)
        if report.issue is not None:
            _note_hold(config, report.issue.key, hold, now)
        box[0] = state.with_record(stem, record)
    if hold:
        return f"{stem}: held; it will not be mailed until approved again"
    assert report.issue is not None  # refusal() said it is an issue
    when = "on the next digest run" if report.issue.date <= now.date() else f"on {report.issue.date}"
    if (moment := send_time(report.issue, config, now)) is not None and moment > now:
        when = f"at its send hour, {describe_moment(moment, config.site.timezone)}"
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
