"""An issue's date: metadata first (whatever it calls the key), then the title, the name, the folder, git.

Every fixture here is written for these tests; none is a real newsletter's text.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.newsletter.dates import date_in_name, find_date
from digest.newsletter.history import FirstCommits
from digest.newsletter.model import Severity
from digest.newsletter.parse import ParseOptions, UndatedIssue, parse_issue, path_key

BODY = "## Links\n\n- [A tool](https://tools.example.org/a)\n"


def findings(issue, code):
    return [f for f in issue.findings if f.code == code]


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("---\ndate: 2025-03-04\n---\n", dt.date(2025, 3, 4)),
        ("---\npubDate: 2025-03-04T09:00:00Z\n---\n", dt.date(2025, 3, 4)),
        ("---\npublished: 'Tue, 04 Mar 2025 09:00:00 +0000'\n---\n", dt.date(2025, 3, 4)),
        ("---\npublishDate: March 4, 2025\n---\n", dt.date(2025, 3, 4)),
        ('+++\ntitle = "Weekly"\ndate = 2025-03-04\n+++\n', dt.date(2025, 3, 4)),
        ("Title: Weekly\nDate: 2025-03-04 10:30\n\n", dt.date(2025, 3, 4)),
        ("\n\n---\ndate: 2025-03-04\n---\n", dt.date(2025, 3, 4)),  # blank lines before the fence
        ("\n+++\ndate = 2025-03-04\n+++\n", dt.date(2025, 3, 4)),
    ],
)
def test_the_metadata_date_under_its_common_names(front, expected):
    issue = parse_issue(front + "# Weekly\n\n" + BODY, Path("weekly.md"))
    assert issue.date == expected
    assert not findings(issue, "bad-date") and not findings(issue, "bad-front-matter")


def test_front_matter_after_blank_lines_is_metadata_not_text():
    issue = parse_issue("\n\n---\ntitle: Field Notes\ndate: 2025-06-01\n---\n\n" + BODY, Path("notes.md"))
    assert issue.title == "Field Notes" and issue.date == dt.date(2025, 6, 1)
    assert "date:" not in issue.intro


def test_published_true_is_a_switch_not_a_date():
    issue = parse_issue("---\npublished: true\n---\n# W\n\n" + BODY, Path("2025-06-02-w.md"))
    assert issue.date == dt.date(2025, 6, 2) and not issue.draft


def test_metadata_comes_before_the_title_and_the_name():
    text = "---\ndate: 2025-05-09 18:00:00 +0200\n---\n# Weekly (2025-05-08)\n\n" + BODY
    issue = parse_issue(text, Path("2025-05-04-weekly.md"))
    assert issue.date == dt.date(2025, 5, 9)
    assert issue.published.utcoffset() == dt.timedelta(hours=2) and issue.published.hour == 18
    assert not findings(issue, "date-mismatch")  # a name for the week and a send date days later


def test_dates_a_week_or_more_apart_are_a_warning_naming_both():
    issue = parse_issue("---\ndate: 2025-05-30\n---\n# W\n\n" + BODY, Path("2025-05-04-weekly.md"))
    (found,) = findings(issue, "date-mismatch")
    assert found.severity is Severity.WARNING
    assert (
        "2025-05-30" in found.message
        and "2025-05-04" in found.message
        and "using 2025-05-30" in found.message
    )


def test_the_title_line_comes_before_the_name():
    issue = parse_issue("# Radio Weekly #12 | 2025.7.21\n\n" + BODY, Path("12.md"))
    assert issue.date == dt.date(2025, 7, 21)
    issue = parse_issue("# Week ending July 20th, 2025\n\n" + BODY, Path("2025-07-18-w.md"))
    assert issue.date == dt.date(2025, 7, 20)


def test_a_month_in_the_title_is_not_a_date():
    issue = parse_issue("+++\ndate = 2025-09-03\n+++\n# This Month (August 2025)\n\n" + BODY, Path("x.md"))
    assert issue.date == dt.date(2025, 9, 3) and not findings(issue, "date-mismatch")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2016-5-30-issue-1.md", dt.date(2016, 5, 30)),  # Jekyll allows unpadded months and days
        ("2016-05-03-issue-2.markdown", dt.date(2016, 5, 3)),
        ("2019-03-31.md", dt.date(2019, 3, 31)),
        ("#16-2018.04.21.md", dt.date(2018, 4, 21)),
        ("weekly_2018_4_2.md", dt.date(2018, 4, 2)),
        ("20240305-notes.md", dt.date(2024, 3, 5)),
        ("2024-03-05/index.md", dt.date(2024, 3, 5)),  # the folder of a page bundle
        ("2024/03/05/notes.md", dt.date(2024, 3, 5)),  # year/month/day folders
        ("2024-03/index.md", dt.date(2024, 3, 1)),  # a month alone: its first day, when nothing says more
    ],
)
def test_dates_in_file_and_folder_names(name, expected):
    issue = parse_issue("# A weekly\n\n" + BODY, Path("issues") / name)
    assert issue.date == expected


@pytest.mark.parametrize("name", ["issue-12.md", "2016-13-40-x.md", "v1.2.3-notes.md", "2024-03.md.bak"])
def test_names_without_a_real_day(name):
    assert date_in_name(Path(name).stem) is None


def test_an_impossible_metadata_date_is_a_warning_naming_the_date_used():
    issue = parse_issue("---\ntitle: W\ndate: 2023-02-29\n---\n\n" + BODY, Path("2023-02-27-w.md"))
    assert issue.date == dt.date(2023, 2, 27) and issue.title == "W"
    (found,) = findings(issue, "bad-date")
    assert found.severity is Severity.WARNING and found.line == 3
    assert "2023-02-29" in found.message and "using 2023-02-27 from the file name" in found.message


def test_a_placeholder_date_in_metadata_lines_falls_back_to_git():
    text = "Title: #03 - A Weekly\nDate: 2024-(TODO: MM-DD)\n\n# News\n\n- [x](https://x.example.org)\n"
    path = Path("/srv/news/2024/03.md")
    stamp = dt.datetime(2024, 2, 11, 9, 0, tzinfo=dt.UTC)
    issue = parse_issue(text, path, ParseOptions(first_commits={path_key(path): stamp}))
    assert issue.date == dt.date(2024, 2, 11)
    (found,) = findings(issue, "bad-date")
    assert found.line == 2 and "using 2024-02-11 from the first commit" in found.message
    with pytest.raises(UndatedIssue) as caught:
        parse_issue(text, path)
    assert {f.code for f in caught.value.findings} >= {"bad-date", "no-date"}


def test_an_unreadable_time_keeps_its_day():
    issue = parse_issue("---\ndate: 2025-04-17 14:4x5:00\n---\n\n" + BODY, Path("2025-04-14-w.md"))
    assert issue.date == dt.date(2025, 4, 17)
    (found,) = findings(issue, "bad-date")
    assert "using 2025-04-17" in found.message


def test_an_impossible_toml_date_keeps_the_rest_of_the_front_matter():
    text = '+++\ntitle = "Monthly"\ndate = 2025-02-30\ndraft = true\n+++\n\n' + BODY
    issue = parse_issue(text, Path("2025-03/index.md"))
    assert (issue.title, issue.draft, issue.date) == ("Monthly", True, dt.date(2025, 3, 1))
    assert [f.code for f in issue.findings if f.code.startswith("bad-")] == ["bad-date"]


def test_a_year_folder_outranks_a_year_typo_in_the_title():
    issue = parse_issue("# Weekly #40 | 2024-01-08\n\n" + BODY, Path("issues/2025/#40-2025.01.08.md"))
    assert issue.date == dt.date(2025, 1, 8)
    (found,) = findings(issue, "date-mismatch")
    assert "year of the folder" in found.message


def test_an_impossible_title_date_is_a_warning():
    issue = parse_issue("# Weekly (2025-02-30)\n\n" + BODY, Path("2025-02-28-w.md"))
    assert issue.date == dt.date(2025, 2, 28)
    (found,) = findings(issue, "bad-date")
    assert "2025-02-30" in found.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Notes, 3 March 2025", dt.date(2025, 3, 3)),
        ("Sept. 9, 2024 edition", dt.date(2024, 9, 9)),
        ("2024年3月1日", dt.date(2024, 3, 1)),
        ("Release 2.0 of 2024", None),
    ],
)
def test_dates_written_in_text(text, expected):
    assert find_date(text)[0] == expected


def test_no_date_anywhere_names_what_to_do():
    with pytest.raises(UndatedIssue) as caught:
        parse_issue("# Weekly\n\n" + BODY, Path("notes.md"))
    (found,) = [f for f in caught.value.findings if f.code == "no-date"]
    assert found.severity is Severity.FATAL and "front matter" in found.message and "commit" in found.message


def git(repo: Path, *args: str, when: str = "") -> None:
    env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {}
    subprocess.run(
        ["git", "-c", "user.name=Ed", "-c", "user.email=ed@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(repo), **env},
    )


def test_git_is_the_last_source_and_is_read_only_when_needed(tmp_path):
    repo = tmp_path / "news"
    (repo / "2026").mkdir(parents=True)
    undated = repo / "2026" / "issue-6.markdown"
    undated.write_text("- [x](https://x.example.org)\n", encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "Start issue 6", when="2026-02-03T22:30:00+00:00")
    commits = FirstCommits(repo)
    options = ParseOptions(first_commits=commits)
    dated = parse_issue("# W (2026-02-01)\n\n" + BODY, repo / "2026" / "issue-5.md", options)
    assert dated.date == dt.date(2026, 2, 1) and not commits.asked
    tz = ZoneInfo("Asia/Tokyo")
    issue = parse_issue(undated.read_bytes(), undated, ParseOptions(timezone=tz, first_commits=commits))
    assert issue.date == dt.date(2026, 2, 4)  # 22:30 UTC is the next morning in Tokyo
    assert issue.published == dt.datetime(2026, 2, 4, 7, 30, tzinfo=tz)


def test_an_empty_metadata_date_is_no_date_at_all():
    issue = parse_issue('---\ntitle: W\ndate: ""\n---\n\n' + BODY, Path("2025-08-04-w.md"))
    assert issue.date == dt.date(2025, 8, 4) and not findings(issue, "bad-date")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Boletín: 1 de marzo de 2024", "es"),
        ("Ausgabe vom 1. März 2024", "de"),
        ("Lettre du 1er mars 2024", "fr"),
        ("소식 2024년 3월 1일", "ko"),
        ("Edição de 1 de março de 2024", "pt-BR"),
    ],
)
def test_a_title_date_in_the_newsletter_language(text, language):
    issue = parse_issue(f"# {text}\n\n" + BODY, Path("notes.md"), ParseOptions(language=language))
    assert issue.date == dt.date(2024, 3, 1)


def test_an_issue_sent_in_january_from_a_december_folder_keeps_its_metadata_date():
    text = "---\ndate: 2025-01-02\n---\n# W\n\n" + BODY
    issue = parse_issue(text, Path("issues/2024/2024-12-29-weekly.md"))
    assert issue.date == dt.date(2025, 1, 2) and not findings(issue, "date-mismatch")


def test_a_draft_beside_the_issues_folder_is_dated_by_its_own_first_commit(tmp_path):
    repo = tmp_path / "news"
    (repo / "issues").mkdir(parents=True)
    (repo / "drafts").mkdir()
    draft = repo / "drafts" / "next.md"
    draft.write_text("- [x](https://x.example.org)\n", encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "Start the next issue", when="2026-03-09T08:00:00+00:00")
    options = ParseOptions(first_commits=FirstCommits(repo / "issues"))
    assert parse_issue(draft.read_bytes(), draft, options).date == dt.date(2026, 3, 9)
