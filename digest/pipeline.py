"""The whole job in one page: parse -> model -> feeds / render -> deliver.

Each function here reads like a step of the story and calls one module per
stage. The CLI and cron call these; tests call them too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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
