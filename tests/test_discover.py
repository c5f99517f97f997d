"""Which files of the issues folder are issues, and every other file listed with why it is not."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path, PurePosixPath

import pytest

from conftest import run_digest
from digest.errors import IssueNotFound
from digest.newsletter.discover import (
    Entry,
    issue_name,
    resolve_issue,
    sort_entries,
    survey,
    survey_newsletter,
)
from digest.newsletter.parse import read_issue

P = PurePosixPath


def issue_text(day: str, title: str = "A weekly") -> str:
    return (
        f"---\ntitle: {title}\ndate: {day}\n---\n\n## Links\n\n- [A tool](https://tools.example.org/{day})\n"
    )


def files(*names: str, size: int = 100) -> list[Entry]:
    return [Entry(P(name), "file", size) for name in names]


def test_layouts_newsletters_use_are_all_read():
    issues, skipped = sort_entries(
        files(
            "2026-05-01-flat.md",
            "2016-5-30-issue-1.markdown",
            "2026/issue-6.md",  # a year folder
            "issue-5/index.md",  # a page bundle
            "2024-03/index.md",
            "017/README.md",  # a folder whose only page is its README
            "2024/03/05/notes.mkd",
            "drafts/next.md",
            "_posts/2026-01-02-post.md",
        )
    )
    assert skipped == []
    assert len(issues) == 9


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (Entry(P("README.md")), "the folder's README"),
        (Entry(P("index.md")), "the folder's index page"),
        (Entry(P("LICENSE.md")), "a licence"),
        (Entry(P("2026/_index.md")), "Hugo's _index"),
        (Entry(P("issue-template.md")), "a template"),
        (Entry(P("_partial.md")), "starts with '_'"),
        (Entry(P("huge.md"), size=3_000_000), "is 3.0 MB; an issue file may be at most 2 MB"),
        (Entry(P("pipe.md"), "special"), "not a regular file"),
        (Entry(P(".hidden.md")), "a hidden file"),
        (Entry(P(".git"), "hidden-folder"), "a hidden folder"),
        (Entry(P("_layouts"), "site-folder"), "a site folder"),
        (Entry(P("old"), "linked-folder"), "a symlink to a folder"),
        (Entry(P("locked"), "unreadable-folder"), "may not read"),
    ],
)
def test_each_file_that_is_not_an_issue_says_why(entry, reason):
    issues, skipped = sort_entries([entry])
    assert issues == []
    ((path, said),) = skipped
    assert path == entry.path and reason in said


def test_other_pages_of_an_issue_folder_are_its_parts_not_issues():
    issues, skipped = sort_entries(
        files("issue-5/index.md", "issue-5/notes.md", "2026/README.md", "2026/a.md")
    )
    assert issues == [P("2026/a.md"), P("issue-5/index.md")]
    assert dict(skipped) == {
        P("2026/README.md"): "the folder's README",
        P("issue-5/notes.md"): "a file of the issue folder 'issue-5', whose page is index.md",
    }


def test_files_that_are_not_markdown_are_one_line_per_folder():
    issues, skipped = sort_entries(
        files("issue-5/index.md", "issue-5/cover.png", "issue-5/chart.svg", "feed.xml")
    )
    assert issues == [P("issue-5/index.md")]
    assert dict(skipped) == {
        P("."): "holds 1 file that is not markdown (.xml)",
        P("issue-5"): "holds 2 files that are not markdown (.png, .svg)",
    }


def test_a_folder_with_no_markdown_below_it_is_one_line():
    entries = files("2026-01-05.md", "site/index.html", "site/css/a.css", "site/js/b.js", "site/img/c.png")
    issues, skipped = sort_entries(entries)
    assert issues == [P("2026-01-05.md")]
    assert skipped == [(P("site"), "holds 4 files that are not markdown (.css, .html, .js, .png)")]


@pytest.fixture
def newsletter(tmp_path: Path) -> Path:
    """A newsletter with every layout at once, and files that are not issues."""
    root = tmp_path / "news" / "content"
    for name, day in [
        ("2026-1-5-first.md", "2026-01-05"),
        ("2026/second.markdown", "2026-01-12"),
        ("third/index.md", "2026-01-19"),
        ("drafts/fourth.md", "2026-01-26"),
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(issue_text(day), encoding="utf-8")
    (root / "third" / "cover.jpg").write_bytes(b"\xff\xd8")
    (root / "README.md").write_text("About this newsletter\n", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.md").write_text("x\n", encoding="utf-8")
    (root / "_layouts").mkdir()
    (root / "_layouts" / "page.md").write_text("x\n", encoding="utf-8")
    outside = tmp_path / "elsewhere.md"
    outside.write_text(issue_text("2026-02-02"), encoding="utf-8")
    (root / "linked.md").symlink_to(outside)
    beside = tmp_path / "news" / "drafts"
    beside.mkdir()
    (beside / "fifth.md").write_text(issue_text("2026-02-09"), encoding="utf-8")
    return root


def test_a_survey_walks_every_layout_and_lists_the_rest(newsletter):
    found = survey(newsletter)
    names = [issue_name(newsletter, path) for path in found.issues]
    assert sorted(names) == ["2026-1-5-first", "2026/second", "drafts/fourth", "linked", "third"]
    reasons = {path.relative_to(newsletter).as_posix(): reason for path, reason in found.skipped}
    assert set(reasons) == {".git", "README.md", "_layouts", "third"}
    both = survey_newsletter(newsletter)
    assert [issue_name(newsletter, p) for p in both.issues][-1] == "drafts/fifth"


def test_issues_are_named_by_their_folder_when_they_are_one(newsletter):
    bundle = read_issue(newsletter / "third" / "index.md")
    assert bundle.stem == "third" and bundle.date == dt.date(2026, 1, 19)
    assert read_issue(newsletter / "2026-1-5-first.md").date == dt.date(2026, 1, 5)
    assert read_issue(newsletter / "drafts" / "fourth.md").draft
    (newsletter / "drafts" / "sixth").mkdir()
    (newsletter / "drafts" / "sixth" / "index.md").write_text(issue_text("2026-03-02"), encoding="utf-8")
    draft = read_issue(newsletter / "drafts" / "sixth" / "index.md")
    assert draft.draft and draft.stem == "sixth"
    assert issue_name(newsletter, draft.path) == "drafts/sixth"


def test_an_issue_argument_is_its_name_its_stem_or_a_path(newsletter):
    assert resolve_issue(newsletter, "2026/second") == newsletter / "2026" / "second.markdown"
    assert resolve_issue(newsletter, "second") == newsletter / "2026" / "second.markdown"
    assert resolve_issue(newsletter, "third") == newsletter / "third" / "index.md"
    assert resolve_issue(newsletter, "drafts/fifth").name == "fifth.md"
    assert resolve_issue(newsletter, "2026/second.markdown") == newsletter / "2026" / "second.markdown"
    (newsletter / "2025").mkdir()
    (newsletter / "2025" / "second.md").write_text(issue_text("2025-01-12"), encoding="utf-8")
    with pytest.raises(IssueNotFound, match="2025/second, 2026/second"):
        resolve_issue(newsletter, "second")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_among_the_issues_is_listed_not_opened(newsletter):
    os.mkfifo(newsletter / "2026-03-01.md")
    found = survey(newsletter)
    assert (newsletter / "2026-03-01.md", "not a regular file (a FIFO, socket or device)") in found.skipped


def write_config(root: Path, issues: Path) -> Path:
    config = root / "digest.toml"
    config.write_text(
        '[site]\ntitle = "A weekly"\nbase_url = "https://news.example.org/"\nlanguage = "en"\n'
        f'[paths]\nissues = "{issues}"\nfeeds = "feeds"\nstate = "state"\n'
        'subscribers = "subscribers.csv"\npreviews = "previews"\n',
        encoding="utf-8",
    )
    (root / "subscribers.csv").write_text("email,name\n", encoding="utf-8")
    return config


def test_status_and_lint_list_every_file_that_is_not_an_issue(newsletter, run_env):
    config = write_config(newsletter.parent, newsletter)
    status = run_digest(["status", "--config", str(config)], run_env)
    assert status.returncode == 0, status.stderr
    for name in ("2026-1-5-first", "2026/second", "third", "drafts/fourth", "drafts/fifth"):
        assert any(line.startswith(name + " ") for line in status.stdout.splitlines()), name
    assert f"{newsletter / 'README.md'}: not an issue: the folder's README" in status.stdout
    assert f"{newsletter / '_layouts'}: not an issue: a site folder" in status.stdout
    assert (
        "linked" in status.stdout
        and "outside [paths] issues" in run_digest(["lint", "--config", str(config)], run_env).stdout
    )
    lint = run_digest(["lint", "--config", str(config)], run_env)
    assert "Traceback" not in lint.stderr
    assert f"{newsletter / 'third'}: not an issue: holds 1 file that is not markdown (.jpg)" in lint.stdout
