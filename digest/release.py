"""Which issues are published (fed) and which are released (mailed).

Published: the file exists, is not a draft (``draft: true`` / ``published: false``),
has no fatal lint finding, and is dated today or earlier in the site's timezone.
"""

from __future__ import annotations

import datetime as dt

from digest.model import Issue, Severity

__all__ = ["is_published", "published_issues"]


def is_published(issue: Issue, now: dt.datetime) -> bool:
    """True when readers may see the issue: finished, not a draft, and its date has come."""
    today = now.astimezone(issue.published.tzinfo).date()
    return not issue.draft and not issue.has(Severity.FATAL) and issue.date <= today


def published_issues(issues: list[Issue], now: dt.datetime) -> list[Issue]:
    """Published issues, newest first (by date, then by file name for a stable order)."""
    chosen = [issue for issue in issues if is_published(issue, now)]
    return sorted(chosen, key=lambda issue: (issue.date, issue.stem), reverse=True)
