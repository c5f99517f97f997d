"""``digest status``: where every issue stands, as a table for a terminal."""

from __future__ import annotations

import datetime as dt
import unicodedata

from digest.bounces.store import bounce_counts
from digest.config import Config
from digest.newsletter.catalog import load_catalog, now_in
from digest.newsletter.discover import skipped_lines
from digest.newsletter.lint import count_by_severity
from digest.newsletter.model import Severity
from digest.release.rules import RELEASE_CHECKS, IssueStatus
from digest.release.tracking import issue_statuses, scan_issues
from digest.send.replies import pause_note
from digest.subscribers.reading import iter_subscribers

__all__ = ["status_table"]


def status_table(config: Config, now: dt.datetime | None = None) -> str:
    """``digest status``: a line per issue, why any unfinished send paused, the files that are no issue."""
    now = now or now_in(config)
    catalog = load_catalog(config, RELEASE_CHECKS)
    scan_issues(config, catalog, now)
    statuses = issue_statuses(config, catalog, now)
    active = sum(1 for s in iter_subscribers(config.paths.subscribers, config.feeds.slugs) if s.active)
    came_back = bounce_counts(config.paths.state)  # issue -> (bounced, complained), from [bounces]
    rows = [
        ("issue", "date", "headline", "items", "lint F/E/W", "published", "approved", "sent/failed/total")
    ]
    rows[0] = (*rows[0], "bounced/complained")
    notes = []
    for status in statuses:
        issue = status.issue
        note = None if status.ledger.finished or issue is None else pause_note(config.paths.state, issue.key)
        if note is not None:
            notes.append(f"{status.stem}: {note}; the next digest run tries again")
        counts = count_by_severity(status.report.findings)
        lint = f"{counts[Severity.FATAL]}/{counts[Severity.ERROR]}/{counts[Severity.WARNING]}"
        ledger = status.ledger
        sent, failed = ledger.count("sent"), ledger.count("failed")
        due = ledger.due if ledger.due is not None else active  # fixed when the round started
        remaining = 0 if ledger.finished else max(0, due - ledger.done)
        total = ledger.recipients + remaining if ledger.exists else active
        rows.append(
            (
                status.stem,
                issue.date.isoformat() if issue else "-",
                _clip(issue.headline if issue else "", 28),
                str(len(issue.items)) if issue else "0",
                lint,
                "yes" if status.published else status.publication,
                "paused" if note is not None else _approval(status),
                f"{sent}/{failed}/{total}",
                "{}/{}".format(*came_back.get(issue.key if issue else status.stem, (0, 0))),
            )
        )
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines + notes + skipped_lines(catalog.skipped))


def _width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _approval(status: IssueStatus) -> str:
    if status.ledger.finished:
        return "mailed"
    if status.released:
        return f"yes ({status.release})"
    if "; scheduled for " in status.release:
        return f"yes ({status.release.split('; ', 1)[1]})"
    return (
        "history"
        if status.record.history and status.release.startswith("history")
        else status.release.split(":")[0]
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
