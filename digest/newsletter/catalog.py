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
from dataclasses import dataclass
from pathlib import Path

from digest.config import Config
from digest.errors import ParseError
from digest.newsletter.discover import issue_paths, link_outside, resolve_issue
from digest.newsletter.lint import LintReport, lint_file
from digest.newsletter.model import Finding, Issue, Severity
from digest.newsletter.parse import ParseOptions, read_issue

__all__ = ["Catalog", "load_catalog", "load_issue", "now_in"]


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


def load_catalog(config: Config) -> Catalog:
    """Read and parse every issue file, keeping each file's findings."""
    options = ParseOptions.from_config(config)
    return Catalog(tuple(_report(config, path, options) for path in issue_paths(config.paths.issues)))


def _report(config: Config, path: Path, options: ParseOptions) -> LintReport:
    outside = link_outside(config.paths.issues, path)
    if outside is not None:  # known by where it points, so status lists it with the reason
        finding = Finding(0, "outside-issues", Severity.FATAL, _outside(outside))
        return LintReport(path, (finding,), None, hashlib.sha256(os.fsencode(outside)).hexdigest())
    report = lint_file(path, options)
    if report.issue is None:
        return report
    issue = _checked(config, report.issue, path)
    return (
        report if issue is report.issue else dataclasses.replace(report, findings=issue.findings, issue=issue)
    )


def _checked(config: Config, issue: Issue, path: Path) -> Issue:
    """The issue with the one check that needs the mail stage: whether its digest fits.

    Release, status, approval and sending all read issues through here, so a
    digest Gmail would clip is held like any lint error.
    """
    if issue.has(Severity.FATAL):
        return issue
    from digest.mail.render import size_finding

    try:
        too_large = size_finding(issue, config, path.stat().st_size)
    except OSError:
        return issue
    return issue if too_large is None else dataclasses.replace(issue, findings=(*issue.findings, too_large))


def _outside(target: Path) -> str:
    return (
        f"is a symlink to {target}, outside [paths] issues: it is neither fed nor mailed "
        "(copy the file into the issues folder if it is an issue)"
    )


def load_issue(config: Config, ref: str) -> Issue:
    """One issue by stem or path; a file that is not an issue yet is a clear error."""
    path = resolve_issue(config.paths.issues, ref)
    outside = link_outside(config.paths.issues, path)
    if outside is not None:
        raise ParseError(_outside(outside), path=path)
    return _checked(config, read_issue(path, ParseOptions.from_config(config)), path)
