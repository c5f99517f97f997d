"""The newsletter's issue files, each read and parsed once per command.

Every stage that needs the issues (state tracking, release decisions, feeds,
status, approval) works from one :class:`Catalog`, so they all see the same
bytes: what is approved is exactly what was linted and previewed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.config import Config
from digest.errors import ParseError
from digest.i18n import N_
from digest.newsletter.discover import link_outside, resolve_issue, survey_newsletter
from digest.newsletter.lint import LintReport, lint_file
from digest.newsletter.model import Finding, Issue, Severity
from digest.newsletter.parse import ParseOptions, read_issue

__all__ = ["Catalog", "IssueCheck", "file_report", "load_catalog", "load_issue", "now_in", "parse_options"]


def now_in(config: Config) -> dt.datetime:
    """The current time in the site's timezone, to the second."""
    return dt.datetime.now(config.site.timezone).replace(microsecond=0)


@dataclass(frozen=True)
class Catalog:
    """Every file in ``[paths] issues``: its lint report, and the issue when it parsed.

    ``skipped`` lists the files and folders there that are not issues, each with the reason.
    """

    reports: tuple[LintReport, ...]
    skipped: tuple[tuple[Path, str], ...] = ()

    @property
    def issues(self) -> list[Issue]:
        return [report.issue for report in self.reports if report.issue is not None]

    def report_for(self, path: Path) -> LintReport | None:
        """The report of one file of the catalog, None when the file is not one of them."""
        wanted = path.resolve()
        return next((report for report in self.reports if report.path.resolve() == wanted), None)


IssueCheck = Callable[[Config, Issue, Path], "Finding | None"]
"""A check a later stage adds to every issue it reads (the release stage: does the digest fit?)."""


def parse_options(config: Config) -> ParseOptions:
    """The parse options of a command: every file's first commit, read once if a file has no date."""
    from digest.newsletter.history import FirstCommits

    return ParseOptions.from_config(config, FirstCommits(config.paths.issues))


def load_catalog(config: Config, checks: Sequence[IssueCheck] = ()) -> Catalog:
    """Read and parse every issue file and draft, keeping each file's findings (and those of ``checks``)."""
    options = parse_options(config)
    found = survey_newsletter(config.paths.issues)
    return Catalog(tuple(file_report(config, path, options, checks) for path in found.issues), found.skipped)


def file_report(
    config: Config, path: Path, options: ParseOptions, checks: Sequence[IssueCheck] = ()
) -> LintReport:
    """The lint report of one file; a symlink out of the issues folder is reported, never read."""
    outside = link_outside(config.paths.issues, path)
    if outside is not None:  # known by where it points, so status lists it with the reason
        finding = Finding(0, "outside-issues", Severity.FATAL, _OUTSIDE, (("target", str(outside)),))
        return LintReport(path, (finding,), None, hashlib.sha256(os.fsencode(outside)).hexdigest())
    report = lint_file(path, options)
    if report.issue is None:
        return report
    issue = _checked(config, report.issue, path, checks)
    return (
        report if issue is report.issue else dataclasses.replace(report, findings=issue.findings, issue=issue)
    )


def _checked(config: Config, issue: Issue, path: Path, checks: Sequence[IssueCheck]) -> Issue:
    """The issue with the findings of the later stages' ``checks`` added (none for a fatal one)."""
    if issue.has(Severity.FATAL) or not checks:
        return issue
    found = [finding for check in checks if (finding := check(config, issue, path)) is not None]
    return dataclasses.replace(issue, findings=(*issue.findings, *found)) if found else issue


_OUTSIDE = N_(
    "is a symlink to %(target)s, outside [paths] issues: it is neither fed nor mailed "
    "(copy the file into the issues folder if it is an issue)"
)


def _outside(target: Path) -> str:
    return _OUTSIDE % {"target": target}


def load_issue(config: Config, ref: str, checks: Sequence[IssueCheck] = ()) -> Issue:
    """One issue by stem or path; a file that is not an issue yet is a clear error."""
    path = resolve_issue(config.paths.issues, ref)
    outside = link_outside(config.paths.issues, path)
    if outside is not None:
        raise ParseError(_outside(outside), path=path)
    return _checked(config, read_issue(path, parse_options(config)), path, checks)
