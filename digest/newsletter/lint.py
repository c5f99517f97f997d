"""Lint: the findings of each issue file, and what they mean for release.

The same findings feed ``digest lint``, the preview report and the release
guard: a ``fatal`` file is not an issue yet (neither fed nor mailed); an
``error`` may be fed but is mailed only when the editor forces it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.errors import ParseError
from digest.newsletter.model import Finding, Issue, Severity
from digest.newsletter.parse import ParseOptions, UndatedIssue, parse_issue, read_source

__all__ = ["LintReport", "count_by_severity", "lint_file", "lint_files"]


@dataclass(frozen=True)
class LintReport:
    """The findings of one file, the parsed issue when it is one, and the hash of the bytes read."""

    path: Path
    findings: tuple[Finding, ...]
    issue: Issue | None
    sha256: str = ""  # empty when the file could not be read

    @property
    def blocking(self) -> bool:
        """True when lint should fail: a fatal finding or an error."""
        return any(f.severity in (Severity.FATAL, Severity.ERROR) for f in self.findings)

    def lines(self) -> list[str]:
        return [f.format(self.path) for f in self.findings]


def lint_file(path: Path, options: ParseOptions) -> LintReport:
    """Read and parse one file and collect its findings; an unreadable file is one fatal finding.

    The file is read once: the hash and the issue describe the same bytes, so an
    approval is for exactly the version that was checked.
    """
    try:
        data = read_source(path)
    except ParseError as exc:
        return LintReport(path, (Finding(0, "unreadable", Severity.FATAL, exc.message),), None)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        issue = parse_issue(data, path, options)
    except UndatedIssue as exc:
        return LintReport(path, exc.findings, None, sha256)
    except Exception as exc:  # one odd file must never stop the whole newsletter
        message = f"could not be parsed ({exc.__class__.__name__}: {exc}); please report this file"
        return LintReport(path, (Finding(0, "parse-failure", Severity.FATAL, message),), None, sha256)
    return LintReport(path, issue.findings, issue, sha256)


def lint_files(paths: Iterable[Path], options: ParseOptions) -> list[LintReport]:
    return [lint_file(path, options) for path in paths]


def count_by_severity(findings: Sequence[Finding]) -> dict[Severity, int]:
    counts = dict.fromkeys(Severity, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts
