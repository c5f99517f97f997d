"""Lint: the findings of each issue file, and what they mean for release.

The same findings feed ``digest lint``, the preview report and the release
guard: a ``fatal`` file is not an issue yet (neither fed nor mailed); an
``error`` may be fed but is mailed only when the editor forces it.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.errors import ParseError
from digest.i18n import N_, gettext_for, join_list, ngettext_for
from digest.newsletter.blocks import without_liquid
from digest.newsletter.markup import markdown_links, normalize_link
from digest.newsletter.meta import read_metadata
from digest.newsletter.model import Finding, Issue, Severity
from digest.newsletter.parse import ParseOptions, UndatedIssue, parse_issue, read_source
from digest.newsletter.scan import FindingLog

__all__ = [
    "LintReport",
    "Reading",
    "count_by_severity",
    "format_folder_reading",
    "format_reading",
    "lint_file",
    "lint_files",
    "lint_lines",
    "read_links",
]

_HREF = re.compile(r'\bhref="([^"]*)"')


@dataclass(frozen=True)
class Reading:
    """How digest read one issue: its sections with their item counts, and where each link went.

    ``links`` counts the http(s) links of the file's body (outside comments, code and
    metadata); each is in an item, in prose that is shown, in a part left out by rule
    (``left_out``: boilerplate such as a back-issues list), or ``missing``: shown nowhere.
    """

    sections: tuple[tuple[str, int], ...]
    links: int
    in_items: int
    in_prose: int
    left_out: tuple[tuple[int, str], ...] = ()
    missing: tuple[tuple[int, str], ...] = ()
    prose_links: tuple[tuple[int, str], ...] = ()  # (line, URL) of each link shown in prose, in no item

    @property
    def shown(self) -> int:
        return self.in_items + self.in_prose

    @property
    def coverage(self) -> float:
        """The share of the body's links that reach the email and the archive (1.0 with no links)."""
        counted = self.links - len(self.left_out)
        return 1.0 if counted <= 0 else self.shown / counted


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

    reading: Reading | None = None

    def lines(self, language: str = "en") -> list[str]:
        """The findings as ``digest lint`` prints them, in the newsletter's language."""
        return [f.format(self.path, language) for f in self.findings]


def lint_file(path: Path, options: ParseOptions) -> LintReport:
    """Read and parse one file and collect its findings; an unreadable file is one fatal finding.

    The file is read once: the hash and the issue describe the same bytes, so an
    approval is for exactly the version that was checked.
    """
    try:
        data = read_source(path)
    except ParseError as exc:
        finding = Finding(0, "unreadable", Severity.FATAL, N_("%(reason)s"), (("reason", exc.message),))
        return LintReport(path, (finding,), None)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        issue = parse_issue(data, path, options)
    except UndatedIssue as exc:
        return LintReport(path, exc.findings, None, sha256)
    except Exception as exc:  # one odd file must never stop the whole newsletter
        message = N_("could not be parsed (%(error)s); please report this file")
        failure = (("error", f"{exc.__class__.__name__}: {exc}"),)
        return LintReport(
            path, (Finding(0, "parse-failure", Severity.FATAL, message, failure),), None, sha256
        )
    return LintReport(path, issue.findings, issue, sha256, read_links(data, issue))


def lint_files(paths: Iterable[Path], options: ParseOptions) -> list[LintReport]:
    return [lint_file(path, options) for path in paths]


def count_by_severity(findings: Sequence[Finding]) -> dict[Severity, int]:
    counts = dict.fromkeys(Severity, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts


def _hrefs(fragment: str) -> Iterator[str]:
    return (html.unescape(url) for url in _HREF.findall(fragment))


def _item_urls(issue: Issue) -> set[str]:
    urls: set[str] = set()
    for item in issue.items:
        urls.update(normalize_link(u) for u in (item.url, *(link.url for link in item.links)) if u)
        urls.update(_hrefs(item.summary_html))
    return urls


def _prose_urls(issue: Issue) -> set[str]:
    fragments = [issue.intro_html, *issue.warmup_html, *(p.html for p in issue.preamble)]
    fragments += [p.html for section in issue.sections for p in section.prose]
    return {url for fragment in fragments for url in _hrefs(fragment)}


def read_links(data: bytes | str, issue: Issue) -> Reading:
    """Where each http(s) link of the issue's body went: an item, prose, a part left out, or nowhere."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    lines = re.split(r"\r\n|\r|\n", text.lstrip("\ufeff"))
    _, start = read_metadata(lines, FindingLog())
    lines = without_liquid(lines, start)
    body = [(start + line + 1, url) for line, url in markdown_links("\n".join(lines[start:]))]
    items, prose = _item_urls(issue), _prose_urls(issue)
    left = {url for part in issue.left_out for _, url in markdown_links(part.markdown)}
    in_items = [(no, url) for no, url in body if url in items]
    in_prose = [(no, url) for no, url in body if url not in items and url in prose]
    rest = [(no, url) for no, url in body if url not in items and url not in prose]
    return Reading(
        sections=tuple((section.name, len(section.items)) for section in issue.sections),
        links=len(body),
        in_items=len(in_items),
        in_prose=len(in_prose),
        left_out=tuple((no, url) for no, url in rest if url in left),
        missing=tuple((no, url) for no, url in rest if url not in left),
        prose_links=tuple(in_prose),
    )


def format_reading(path: Path | str, reading: Reading, language: str = "en") -> list[str]:
    """The reading of one file, for ``digest lint``: sections, links outside items, coverage."""
    _ = gettext_for(language)
    named = [_("%(section)s (%(count)s)", section=name, count=count) for name, count in reading.sections]
    sections = join_list(named, language) or _("none")
    out = [
        f"{path}: " + _("sections: %(sections)s", sections=sections),
        f"{path}: "
        + _links_line(
            _,
            reading.links,
            reading.in_items,
            reading.in_prose,
            len(reading.left_out),
            len(reading.missing),
            reading.coverage,
        ),
    ]
    if reading.prose_links:
        listed = ", ".join(f"{no} {url}" for no, url in reading.prose_links)  # URLs: no CJK comma after one
        out.append(f"{path}: " + _("links in prose, not in any item (line, link): %(links)s", links=listed))
    out += [
        f"{path}:{no}: " + _("link left out with boilerplate: %(url)s", url=url)
        for no, url in reading.left_out
    ]
    out += [f"{path}:{no}: " + _("link shown nowhere: %(url)s", url=url) for no, url in reading.missing]
    return out


def lint_lines(reports: Sequence[LintReport], language: str = "en") -> list[str]:
    """What ``digest lint`` prints: each file's findings and reading, then the folder's reading."""
    out: list[str] = []
    for report in reports:
        out += report.lines(language)
        out += format_reading(report.path, report.reading, language) if report.reading is not None else []
    return out + format_folder_reading(reports, language)


def format_folder_reading(reports: Sequence[LintReport], language: str = "en") -> list[str]:
    """The whole folder's reading: issues read, sections by how often they occur, overall coverage."""
    _, ngettext = gettext_for(language), ngettext_for(language)
    readings = [report.reading for report in reports if report.reading is not None]
    counts: dict[str, list[int]] = {}
    for reading in readings:
        for name, items in reading.sections:
            counts.setdefault(name, []).append(items)
    links = sum(r.links - len(r.left_out) for r in readings)
    left_out = sum(len(r.left_out) for r in readings)
    shown = sum(r.shown for r in readings)
    in_items = sum(r.in_items for r in readings)
    coverage = 1.0 if links <= 0 else shown / links
    top = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    listed = join_list(
        [
            _(
                "%(section)s (%(issues)s, %(items)s)",
                section=name,
                issues=ngettext("%(count)s issue", "%(count)s issues", len(n), count=len(n)),
                items=ngettext("%(count)s item", "%(count)s items", sum(n), count=sum(n)),
            )
            for name, n in top[:12]
        ],
        language,
    )
    if len(top) > 12:
        listed = _("%(sections)s, and %(more)s more", sections=listed, more=len(top) - 12)
    read = _(
        "%(issues)s of %(files)s file(s) read as issues; sections: %(sections)s",
        issues=len(readings),
        files=len(reports),
        sections=listed or _("none"),
    )
    return [
        read,
        _links_line(_, links + left_out, in_items, shown - in_items, left_out, links - shown, coverage),
    ]


def _links_line(
    _: Callable[..., str],
    links: int,
    in_items: int,
    in_prose: int,
    left_out: int,
    missing: int,
    coverage: float,
) -> str:
    share = f"{coverage:.1%}"
    return _(
        "%(links)s links: %(in_items)s in items, %(in_prose)s in prose, %(left_out)s left out by rule, "
        "%(missing)s not shown; coverage %(coverage)s",
        links=links,
        in_items=in_items,
        in_prose=in_prose,
        left_out=left_out,
        missing=missing,
        coverage=share,
    )
