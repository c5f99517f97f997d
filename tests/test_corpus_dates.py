"""Every file of every real newsletter in ../shared/corpus is an issue with the right date, or listed as
not one with the reason (skipped when ../shared is absent).

The expected date is worked out here independently and simply: a ``date``
metadata line when it names a real day; else the file's first commit (the
``dates.tsv`` kept beside a newsletter whose files carry no date); else a date in
the ``#`` title line or the file name, the one whose year matches the year folder.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from conftest import CORPUS
from digest.newsletter.discover import survey_newsletter
from digest.newsletter.lint import lint_file
from digest.newsletter.parse import ParseOptions, path_key

pytestmark = pytest.mark.corpus

NEWSLETTERS = [*sorted(p for p in (CORPUS / "more").glob("*") if p.is_dir()), CORPUS / "embedded-ai-report"]
_META_DATE = re.compile(r"(?mi)^(?:date|pubdate)\s*[:=]\s*['\"]?(\d{4})-(\d{1,2})-(\d{1,2})")
_TEXT_DATE = re.compile(r"(\d{4})[-./](\d{1,2})[-./](\d{1,2})")


def issues_folder(newsletter: Path) -> Path:
    return newsletter / "issues" if (newsletter / "issues").is_dir() else newsletter


def first_commits(newsletter: Path) -> dict[str, dt.datetime]:
    listed = newsletter / "dates.tsv"
    if not listed.exists():
        return {}
    pairs = (line.split("\t") for line in listed.read_text(encoding="utf-8").splitlines() if line.strip())
    return {path_key(issues_folder(newsletter) / rel): dt.datetime.fromisoformat(when) for rel, when in pairs}


def day(match: re.Match[str] | None) -> dt.date | None:
    if match is None:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def expected_date(path: Path, commits: dict[str, dt.datetime]) -> dt.date | None:
    text = path.read_text(encoding="utf-8", errors="replace")
    head = "\n".join(text.splitlines()[:40])
    if (meta := day(_META_DATE.search(head))) is not None:
        return meta
    if path_key(path) in commits:
        return commits[path_key(path)].astimezone(dt.UTC).date()
    title_line = next((line for line in text.splitlines() if line.startswith("# ")), "")
    found = [d for d in (day(_TEXT_DATE.search(title_line)), day(_TEXT_DATE.search(path.name))) if d]
    years = [int(part) for part in path.parent.parts[-1:] if re.fullmatch(r"(19|20)\d\d", part)]
    matching = [d for d in found if d.year in years] if years else found
    return (matching or found or [None])[0]


def every_file(newsletter: Path) -> list[Path]:
    folders = [issues_folder(newsletter)] + [newsletter / "drafts"] * (newsletter / "drafts").is_dir()
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("newsletter", NEWSLETTERS, ids=lambda p: p.name)
def test_every_file_is_an_issue_or_listed_with_a_reason(newsletter):
    found = survey_newsletter(issues_folder(newsletter))
    issues = set(found.issues)
    skipped = {path for path, reason in found.skipped if reason}
    for path in every_file(newsletter):
        covered = path in issues or any(s == path or s in path.parents for s in skipped)
        assert covered, f"{path} is neither an issue nor listed as skipped"
    assert issues, "no issue found"


@pytest.mark.parametrize("newsletter", NEWSLETTERS, ids=lambda p: p.name)
def test_dates_are_right_and_an_undated_file_says_why(newsletter):
    commits = first_commits(newsletter)
    options = ParseOptions(first_commits=commits)
    right, wrong, refused = 0, [], []
    for path in survey_newsletter(issues_folder(newsletter)).issues:
        report = lint_file(path, options)
        want = expected_date(path, commits)
        if report.issue is None:
            codes = {f.code for f in report.findings}
            assert "no-date" in codes or "empty-file" in codes, report.lines()
            assert want is None, f"{path} has the date {want} but was refused: {report.lines()}"
            refused.append(path)
        elif report.issue.date == want:
            right += 1
        else:
            wrong.append((path.name, report.issue.date, want))
    assert len(wrong) <= max(1, (right + len(wrong)) // 100), wrong  # >= 99% right
    assert len(refused) <= 1, refused  # only a file with no date anywhere, and no git to ask


@pytest.mark.parametrize("newsletter", NEWSLETTERS, ids=lambda p: p.name)
def test_an_impossible_metadata_date_is_a_warning_that_names_the_date_used(newsletter):
    options = ParseOptions(first_commits=first_commits(newsletter))
    for path in survey_newsletter(issues_folder(newsletter)).issues:
        head = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[:40])
        meta = re.search(r"(?mi)^date\s*[:=]\s*['\"]?(\d{4}-[^\n'\"]*)", head)
        if meta is None or day(_META_DATE.search(head)) is not None:
            continue
        report = lint_file(path, options)
        (warning,) = [f for f in report.findings if f.code == "bad-date"]
        assert warning.severity == "warning" and meta.group(1).strip()[:10] in warning.message
        if report.issue is not None:
            assert f"using {report.issue.date}" in warning.message
