"""Conformance over every real newsletter in ../shared/corpus (skipped when it is absent).

Each newsletter is read as its editor would configure it from the docs alone: the
defaults, and ``date_from = "git"`` where the newsletter's files carry no date (a
``dates.tsv`` of first commits stands in for its git history). Nothing here knows any
one newsletter: the same invariants hold for all of them.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CORPUS
from digest.newsletter.lint import LintReport, lint_file
from digest.newsletter.model import Severity
from digest.newsletter.parse import path_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from corpus_coverage import newsletter_files as issue_files
from corpus_coverage import options_for

pytestmark = pytest.mark.corpus

MORE = CORPUS / "more"
NEWSLETTERS = sorted(p for p in MORE.iterdir() if p.is_dir()) if MORE.is_dir() else []
EVERY = [*NEWSLETTERS, CORPUS / "embedded-ai-report"] if NEWSLETTERS else []
_ISO_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
# What may keep a file from being an issue: an unfinished draft, nothing in it, or no date
# that digest reads (file-name spellings beyond ISO are read by the folder layer).
_UNFINISHED = {"placeholder-title", "empty-file", "no-items", "no-date"}


@functools.cache
def read(folder: Path) -> tuple[LintReport, ...]:
    options = options_for(folder)
    return tuple(lint_file(path, options) for path in issue_files(folder))


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8", errors="replace")
    match = re.match(r"---\r?\n(.*?)\r?\n---", text, re.S)
    try:
        loaded = yaml.safe_load(match.group(1)) if match else None
    except (yaml.YAMLError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def ids(folder: Path) -> str:
    return folder.name


def test_every_newsletter_of_the_corpus_is_covered():
    assert {p.name for p in NEWSLETTERS} | {"embedded-ai-report"} == {
        p.name for p in (*NEWSLETTERS, CORPUS / "embedded-ai-report") if p.is_dir()
    }
    assert len(NEWSLETTERS) >= 7


@pytest.mark.parametrize("folder", EVERY, ids=ids)
def test_no_file_stops_the_reader(folder):
    reports = read(folder)
    assert reports
    crashed = [r.path for r in reports if any(f.code == "parse-failure" for f in r.findings)]
    assert crashed == []


@pytest.mark.parametrize("folder", NEWSLETTERS, ids=ids)
def test_no_sound_issue_is_refused_or_held_back(folder):
    reports = read(folder)
    refused = [
        (r.path.name, sorted({f.code for f in r.findings if f.severity is Severity.FATAL}))
        for r in reports
        if r.issue is None or r.issue.has(Severity.FATAL)
    ]
    assert all(set(codes) <= _UNFINISHED for _, codes in refused), refused
    assert len(refused) <= max(2, len(reports) // 100), refused  # a draft or two, never a shape
    held = [
        f.format(r.path)
        for r in reports
        if r.issue is not None
        for f in r.findings
        if f.severity is Severity.ERROR
    ]
    assert held == []


@pytest.mark.parametrize("folder", EVERY, ids=ids)
def test_every_link_reaches_the_mail_as_an_item_or_in_prose(folder):
    missing = [
        f"{r.path}:{no} {url}" for r in read(folder) if r.reading is not None for no, url in r.reading.missing
    ]
    assert missing == []


@pytest.mark.parametrize("folder", NEWSLETTERS, ids=ids)
def test_nothing_is_left_out_without_a_rule_to_say_so(folder):
    left = [f"{r.path}:{no}" for r in read(folder) if r.reading is not None for no, _ in r.reading.left_out]
    assert left == []


@pytest.mark.parametrize("folder", EVERY, ids=ids)
def test_each_item_stands_in_the_section_whose_heading_is_above_it(folder):
    for report in read(folder):
        issue = report.issue
        if issue is None:
            continue
        starts = [section.line for section in issue.sections] + [10**9]
        for index, section in enumerate(issue.sections):
            for item in section.items:
                assert starts[index] < item.line < starts[index + 1], (report.path, section.name, item.line)


@pytest.mark.parametrize("folder", NEWSLETTERS, ids=ids)
def test_titles_come_from_the_front_matter_or_the_title_line(folder):
    for report in read(folder):
        issue = report.issue
        if issue is None:
            continue
        front = front_matter(report.path).get("title")
        section_names = {section.name for section in issue.sections}
        assert issue.title and issue.title not in section_names, report.path
        if isinstance(front, str) and front.strip():
            assert front.strip().startswith(issue.title), (report.path, issue.title)
        assert "**" not in issue.title and "](" not in issue.title


@pytest.mark.parametrize("folder", NEWSLETTERS, ids=ids)
def test_dates_are_ones_the_file_names(folder):
    """The date is the title's, the metadata's, the file name's or the first commit's: never a guess."""
    options = options_for(folder)
    for report in read(folder):
        issue = report.issue
        if issue is None:
            continue
        named = set()
        if match := _ISO_NAME.match(report.path.name):
            named.add(dt.date(*map(int, match.groups())))
        front = front_matter(report.path).get("date")
        if isinstance(front, dt.datetime):
            named.add(front.date())
        elif isinstance(front, dt.date):
            named.add(front)
        if committed := options.first_commits.get(path_key(report.path)):
            named.add(committed.astimezone(options.timezone).date())
        text = report.path.read_text(encoding="utf-8", errors="replace")
        named.update(
            dt.date(*map(int, m))
            for m in re.findall(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})", report.path.name + "\n" + text[:4000])
            if _valid(m)
        )
        named.update(_pelican_date(text))
        assert issue.date in named, (report.path, issue.date, named)


@pytest.mark.parametrize("folder", NEWSLETTERS, ids=ids)
def test_hard_wrapped_english_prose_reads_as_running_text(folder):
    """A long line that stops mid-sentence runs on: at most one such wrap in a hundred shows a break."""
    wrapped = broken = 0
    for report in read(folder):
        issue = report.issue
        if issue is None:
            continue
        for item in issue.items:
            lines = item.summary.splitlines()
            for line, following in itertools.pairwise(lines):
                text = line.strip()
                if len(text) >= 60 and re.search(r"[a-z,]$", text) and re.match(r"\s*[a-z]", following):
                    wrapped += 1
                    broken += f"{text}<br" in item.summary_html
    assert broken <= wrapped / 100, (broken, wrapped)


def _valid(parts: tuple[str, str, str]) -> bool:
    try:
        dt.date(*map(int, parts))
    except ValueError:
        return False
    return True


def _pelican_date(text: str) -> set[dt.date]:
    match = re.search(r"^Date:\s*(\d{4})-(\d{2})-(\d{2})", text, re.M)
    return {dt.date(*map(int, match.groups()))} if match and _valid(match.groups()) else set()
