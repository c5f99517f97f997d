"""`digest init`: a first config from a newsletter's own issues that `digest run` takes as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import feedparser
import pytest
from test_examples_run import git as examples_git

from conftest import CORPUS, ROOT, run_digest
from digest.newsletter.starter import GITIGNORE_LINES, PLACEHOLDER_URL

ENGLISH_ISSUE = """\
---
title: "Small Tools Weekly #{n}"
date: 2026-10-{day:02d}
---

Three links this week.

## Articles

- [Reading a heap profile](https://blog.example.net/heap-{n}): where the memory went.
- [Tracing without a tracer](https://blog.example.net/trace-{n}): printf, done carefully.

## Tools & Tips

- [tidy-{n}](https://code.example.net/tidy-{n}): formats the config files nobody formats.

## {once}

- [A one-off](https://once.example.net/{n})

## About

Written on weekends by two people who like small tools.
"""


def english_site(root: Path) -> Path:
    """A Hugo site with three issues of an English newsletter (text written for this test)."""
    posts = root / "content" / "posts"
    posts.mkdir(parents=True)
    for n, day in ((1, 2), (2, 9), (3, 16)):
        text = ENGLISH_ISSUE.format(n=n, day=day, once=f"Extra {n}")
        (posts / f"issue-{n}.md").write_text(text, encoding="utf-8")
    (root / "hugo.toml").write_text('baseURL = "https://tools.example.net/"\ntitle = "x"\n', encoding="utf-8")
    return posts


def init(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_digest(["init", *args], env, cwd=root)


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return done


def test_an_empty_folder_becomes_a_newsletter_that_runs(tmp_path, run_env):
    done = ok(init(tmp_path, run_env))
    config = tomllib.loads((tmp_path / "digest.toml").read_text(encoding="utf-8"))
    assert config["site"]["language"] == "en" and config["email"]["transport"] == "maildir:var/maildir"
    assert config["release"]["mode"] == "manual"  # nothing is mailed before the editor approves
    example = next((tmp_path / "issues").glob("*.md"))
    assert f"wrote {Path('issues') / example.name} (an example issue)" in done.stdout
    assert (tmp_path / "subscribers.csv").read_text() == "email,name,sections,status,since\n"
    assert set(GITIGNORE_LINES) <= set((tmp_path / ".gitignore").read_text().splitlines())
    assert PLACEHOLDER_URL in done.stdout  # said aloud, not silent
    run = ok(run_digest(["run"], run_env, cwd=tmp_path))
    assert f"waiting for approval: digest approve {example.stem}" in run.stdout
    feed = feedparser.parse((tmp_path / "feeds" / "atom.xml").read_bytes())
    assert len(feed.entries) == 1


def test_init_overwrites_nothing(tmp_path, run_env):
    (tmp_path / ".gitignore").write_text("node_modules/\n/var/\n", encoding="utf-8")
    (tmp_path / "subscribers.csv").write_text("email,name,sections,status,since\na@example.com,,,,\n")
    ok(init(tmp_path, run_env))
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert ignored[:2] == ["node_modules/", "/var/"] and ignored.count("/var/") == 1
    assert "a@example.com" in (tmp_path / "subscribers.csv").read_text()
    written = (tmp_path / "digest.toml").read_bytes()
    again = init(tmp_path, run_env)
    assert again.returncode == 1
    assert (
        again.stderr == "digest: digest.toml: already exists; digest init never overwrites a file "
        "(move it aside to start again)\n"
    )
    assert (tmp_path / "digest.toml").read_bytes() == written
    assert (tmp_path / ".gitignore").read_text().splitlines() == ignored


def test_an_english_hugo_site_gets_its_sections_url_and_language(tmp_path, run_env):
    english_site(tmp_path)
    done = ok(init(tmp_path, run_env))
    assert "read 3 issue file(s)" in done.stdout and PLACEHOLDER_URL not in done.stdout
    config = tomllib.loads((tmp_path / "digest.toml").read_text(encoding="utf-8"))
    assert config["paths"]["issues"] == "content/posts"
    assert config["site"]["base_url"] == "https://tools.example.net/"
    assert config["site"]["language"] == "en" and config["newsletter"]["date_from"] == "content"
    assert config["feeds"]["sections"] == {"Articles": "articles", "Tools & Tips": "tools-tips"}
    # the slugs lint prints are the ones a reader may choose
    lint = run_digest(["lint"], run_env, cwd=tmp_path)
    assert "section 'Extra 1' is not in [feeds.sections]; its feed slug is 'extra-1'" in lint.stdout
    added = ok(
        run_digest(["subscribers", "add", "r@example.com", "--sections", "tools-tips"], run_env, tmp_path)
    )
    assert added.stdout == "added r@example.com\n"
    ok(run_digest(["run"], run_env, cwd=tmp_path))
    feed = feedparser.parse((tmp_path / "feeds" / "tools-tips.atom.xml").read_bytes())
    assert sorted(entry.link for entry in feed.entries) == [
        f"https://code.example.net/tidy-{n}" for n in (1, 2, 3)
    ]


def test_a_chinese_newsletter_is_written_in_chinese(tmp_path, run_env):
    shutil.copytree(ROOT / "tests" / "fixtures" / "chinese" / "issues", tmp_path / "issues")
    ok(init(tmp_path, run_env, "--title", "简报"))
    config = tomllib.loads((tmp_path / "digest.toml").read_text(encoding="utf-8"))
    assert config["site"]["language"] == "zh-CN" and config["site"]["title"] == "简报"
    assert all(slug.isascii() for slug in config["feeds"]["sections"].values())
    ok(run_digest(["run"], run_env, cwd=tmp_path))


def git(root: Path, *args: str, date: str = "2026-01-01T00:00:00+00:00") -> None:
    """git as a fixed editor at ``date``, reading no one's git config (the examples' helper)."""
    examples_git(root, *args, date=date)


def commit_with_dates(root: Path, dates: dict[str, str]) -> None:
    """A git repository where each file under ``root`` was first committed on its date."""
    git(root, "init", "-q", "-b", "main")
    for when in sorted(set(dates.values())):
        names = [name for name, date in dates.items() if date == when]
        git(root, "add", "--", *names)
        git(root, "commit", "-qm", f"add {len(names)} issue(s)", date=when)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the rest", "--allow-empty")


def test_undated_issues_in_git_take_their_dates_from_git(tmp_path, run_env):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    issues = tmp_path / "issues"
    issues.mkdir()
    dates = {}
    for n, day in ((1, 5), (2, 12)):
        (issues / f"issue-{n}.md").write_text(f"## Reading\n\n- [Post {n}](https://example.net/{n})\n")
        dates[f"issues/issue-{n}.md"] = f"2026-10-{day:02d}T10:00:00+00:00"
    commit_with_dates(tmp_path, dates)
    ok(init(tmp_path, run_env))
    config = tomllib.loads((tmp_path / "digest.toml").read_text(encoding="utf-8"))
    assert config["newsletter"]["date_from"] == "git"
    assert config["feeds"]["sections"] == {"Reading": "reading"}
    ok(run_digest(["run"], run_env, cwd=tmp_path))
    feed = feedparser.parse((tmp_path / "feeds" / "atom.xml").read_bytes())
    assert len(feed.entries) == 2


def corpus_newsletters() -> list[Path]:
    more = CORPUS / "more"
    found = [CORPUS / "embedded-ai-report"] if (CORPUS / "embedded-ai-report").is_dir() else []
    return found + (sorted(p for p in more.iterdir() if (p / "issues").is_dir()) if more.is_dir() else [])


def copy_newsletter(source: Path, root: Path) -> None:
    """The newsletter as its editor keeps it: issues (and drafts) in a folder, in git when dated by git."""
    if (source / "issues").is_dir():
        for name in ("issues", "drafts"):
            if (source / name).is_dir():
                shutil.copytree(source / name, root / name)
    else:
        shutil.copytree(source, root / "issues", ignore=shutil.ignore_patterns("*.txt", "LICENSE*"))
    dates_file = source / "dates.tsv"
    if dates_file.is_file():
        if shutil.which("git") is None:
            pytest.skip("git is not installed")
        lines = [line.split("\t") for line in dates_file.read_text().splitlines() if "\t" in line]
        commit_with_dates(root, {f"issues/{name}": when.strip() for name, when in lines})


@pytest.mark.corpus
@pytest.mark.parametrize("source", corpus_newsletters(), ids=lambda p: p.name)
def test_init_then_run_works_unedited_on_every_corpus_newsletter(source, tmp_path, run_env):
    copy_newsletter(source, tmp_path)
    done = ok(init(tmp_path, run_env))
    assert "wrote digest.toml" in done.stdout and "an example issue" not in done.stdout
    config = tomllib.loads((tmp_path / "digest.toml").read_text(encoding="utf-8"))
    assert all(slug.isascii() for slug in config["feeds"]["sections"].values())
    run = ok(run_digest(["run"], run_env, cwd=tmp_path))
    assert "sent " not in run.stdout  # manual mode: nothing goes out unasked
    read = int(re.search(r"read (\d+) issue file\(s\)", done.stdout)[1])
    feed = feedparser.parse((tmp_path / "feeds" / "atom.xml").read_bytes())
    assert read > 0 and 0 < len(feed.entries) <= 20  # the newest issues, [feeds] limit at most


@pytest.mark.parametrize(
    ("name", "text", "url"),
    [
        (
            "_config.yml",
            'title: x\nurl: "https://blog.example.net"\nbaseurl: "/weekly"\n',
            "https://blog.example.net/weekly/",
        ),
        ("hugo.toml", "baseURL = 'https://hugo.example.net/'\n", "https://hugo.example.net/"),
        ("config.toml", 'base_url = "https://zola.example.net"\n', "https://zola.example.net/"),
        ("publishconf.py", "SITEURL = 'https://pelican.example.net'\n", "https://pelican.example.net/"),
    ],
)
def test_the_site_generators_url_becomes_the_base_url(name, text, url, tmp_path, run_env):
    (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "_posts").mkdir()
    (tmp_path / "_posts" / "2026-10-02-one.md").write_text(ENGLISH_ISSUE.format(n=1, day=2, once="x"))
    ok(init(tmp_path, run_env))
    assert tomllib.loads((tmp_path / "digest.toml").read_text())["site"]["base_url"] == url


def test_a_language_tag_that_names_no_language_is_refused_before_anything_is_written(tmp_path, run_env):
    done = init(tmp_path, run_env, "--language", "klingon")
    assert done.returncode == 1 and "'site.language'" in done.stderr and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
