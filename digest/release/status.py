"""``digest status``: where every issue stands, as a table for a terminal or as JSON lines."""

from __future__ import annotations

import datetime as dt
import typing
import unicodedata

from digest.bounces.store import bounce_counts
from digest.config import Config
from digest.i18n import N_, gettext_for
from digest.newsletter.catalog import Catalog, load_catalog, now_in
from digest.newsletter.discover import skipped_lines
from digest.newsletter.lint import count_by_severity
from digest.newsletter.model import Severity
from digest.release.rules import RELEASE_CHECKS, IssueStatus
from digest.release.tracking import issue_statuses, scan_issues
from digest.send.replies import pause_note
from digest.subscribers.reading import iter_subscribers

__all__ = ["status_records", "status_table"]


def status_records(config: Config, now: dt.datetime | None = None) -> list[dict[str, object]]:
    """Where every issue file stands, one mapping per file (``digest status --json``)."""
    return _records(config, now)[0]


def _records(config: Config, now: dt.datetime | None) -> tuple[list[dict[str, object]], Catalog]:
    now = now or now_in(config)
    catalog = load_catalog(config, RELEASE_CHECKS)
    scan_issues(config, catalog, now)
    statuses = issue_statuses(config, catalog, now)
    active = sum(1 for s in iter_subscribers(config.paths.subscribers, config.feeds.slugs) if s.active)
    came_back = bounce_counts(config.paths.state)  # issue -> (bounced, complained), from [bounces]
    records: list[dict[str, object]] = []
    for status in statuses:
        issue = status.issue
        note = None if status.ledger.finished or issue is None else pause_note(config.paths.state, issue.key)
        counts = count_by_severity(status.report.findings)
        ledger = status.ledger
        due = ledger.due if ledger.due is not None else active  # fixed when the round started
        remaining = 0 if ledger.finished else max(0, due - ledger.done)
        bounced, complained = came_back.get(issue.key if issue else status.stem, (0, 0))
        records.append(
            {
                "issue": status.stem,
                "date": issue.date.isoformat() if issue else None,
                "headline": issue.headline if issue else "",
                "items": len(issue.items) if issue else 0,
                "lint": {severity.value: counts[severity] for severity in Severity},
                "published": "yes" if status.published else status.publication,
                "approved": "paused" if note is not None else _approval(status),
                "sent": ledger.count("sent"),
                "failed": ledger.count("failed"),
                "total": ledger.recipients + remaining if ledger.exists else active,
                "bounced": bounced,
                "complained": complained,
                "paused": note,
            }
        )
    return records, catalog


def status_table(config: Config, now: dt.datetime | None = None) -> str:
    """``digest status``: a line per issue, why any unfinished send paused, the files that are no issue."""
    records, catalog = _records(config, now)
    _ = gettext_for(config.site.language)
    rows = [tuple(_(header) for header in _HEADERS)]
    notes = []
    for record in records:
        if record["paused"] is not None:
            notes.append(f"{record['issue']}: {record['paused']}; the next digest run tries again")
        lint = typing.cast(dict[str, int], record["lint"])
        rows.append(
            (
                str(record["issue"]),
                str(record["date"] or "-"),
                _clip(str(record["headline"]), 28),
                str(record["items"]),
                "{fatal}/{error}/{warning}".format(**lint),
                str(record["published"]),
                str(record["approved"]),
                "{sent}/{failed}/{total}".format(**record),
                "{bounced}/{complained}".format(**record),
            )
        )
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines + notes + skipped_lines(catalog.skipped, config.site.language))


_HEADERS = (
    N_("issue"),
    N_("date"),
    N_("headline"),
    N_("items"),
    N_("lint F/E/W"),
    N_("published"),
    N_("approved"),
    N_("sent/failed/total"),
    N_("bounced/complained"),
)


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
