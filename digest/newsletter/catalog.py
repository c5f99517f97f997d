"""The newsletter's issue files, each read and parsed once per command.

Every stage that needs the issues (state tracking, release decisions, feeds,
status, approval) works from one :class:`Catalog`, so they all see the same
bytes: what is approved is exactly what was linted and previewed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from digest.config import Config
from digest.newsletter.discover import draft_paths, issue_paths, resolve_issue
from digest.newsletter.lint import LintReport, lint_file
from digest.newsletter.model import Issue
from digest.newsletter.parse import ParseOptions, read_issue

__all__ = ["Catalog", "load_catalog", "load_issue", "now_in", "parse_options"]


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

    def report_for(self, path: Path) -> LintReport | None:
        """The report of one file of the catalog, None when the file is not one of them."""
        wanted = path.resolve()
        return next((report for report in self.reports if report.path.resolve() == wanted), None)


def parse_options(config: Config) -> ParseOptions:
    """The parse options of a command: with ``date_from = "git"``, every file's first commit, read once."""
    if config.newsletter.date_from != "git":
        return ParseOptions.from_config(config)
    from digest.newsletter.history import first_commits

    return ParseOptions.from_config(config, first_commits(config.paths.issues))


def load_catalog(config: Config) -> Catalog:
    """Read and parse every issue file, keeping each file's findings."""
    options = parse_options(config)
    paths = issue_paths(config.paths.issues) + draft_paths(config.paths.issues)
    return Catalog(tuple(lint_file(path, options) for path in paths))


def load_issue(config: Config, ref: str) -> Issue:
    """One issue by stem or path; a file that is not an issue yet is a clear error."""
    return read_issue(resolve_issue(config.paths.issues, ref), parse_options(config))
