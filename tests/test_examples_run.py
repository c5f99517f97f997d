"""The two example newsletters of other shapes, run end to end as an editor runs them.

Each is copied to a temporary folder and run with ``digest run --config
examples/NAME/digest.toml``: feeds, a preview, and mail into a Maildir. The Chinese
weekly dates its issues by their first git commit, so its copy becomes a throwaway
git repository with commits at fixed dates.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
from pathlib import Path

import feedparser
import pytest

from conftest import EXAMPLES, run_digest

SECRET = {"DIGEST_SECRET": "example-secret-0123456789"}


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    return target


def mails(root: Path) -> list[email.message.EmailMessage]:
    folder = root / "var" / "maildir" / "new"
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(folder.iterdir())
    ]


def outputs(root: Path) -> str:
    """Every file digest wrote (feeds, previews, mail), as text."""
    parts = []
    for folder in ("output", "site", "var"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix not in (".json", ".key"):
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
    for message in mails(root):
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
    return "\n".join(parts)


def test_the_pelican_weekly_runs_end_to_end(tmp_path, run_env):
    root = copy("pelican-weekly", tmp_path)
    first = run_digest(["run", "--config", str(root / "digest.toml")], {**run_env, **SECRET})
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "sent tern-weekly-43: sent 2, failed 0" in first.stdout
    feeds = root / "output" / "feeds"
    whole = feedparser.parse((feeds / "atom.xml").read_bytes())
    assert not whole.bozo
    assert [e.title for e in whole.entries] == [
        "Tern Weekly 43",
        "Tern Weekly 42",
        "Tern Weekly 41",
    ]  # no draft
    news = feedparser.parse((feeds / "news.atom.xml").read_bytes())
    heron = next(e for e in news.entries if e.link == "https://heron.example.com/announcing")
    assert "Project Updates" in [t.term for t in heron.tags]  # the subsection is a category
    assert not list(feeds.glob("quote-of-the-week.*"))  # a prose section has no feed
    preview = (root / "var" / "previews" / "tern-weekly-43" / "email.html").read_text(encoding="utf-8")
    assert "Beta means the bugs have names now." in preview and "Project Updates" in preview
    messages = mails(root)
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == [
        "ada@example.com",
        "grace@example.net",
    ]
    assert {m["Subject"] for m in messages} == {"Tern Weekly #43"}
    text = outputs(root)
    assert "hidden - not an item" not in text and "hidden/issues/3" not in text  # in an HTML comment
    assert "tern-http/issues/1" not in text and "Not a real task" not in text
    assert "Compiler engineer" not in text and "jobs.example.com" not in text  # skip_sections
    again = run_digest(["run", "--config", str(root / "digest.toml")], {**run_env, **SECRET})
    assert again.stdout == "nothing to do\n"


def git(root: Path, *args: str, date: str = "2026-10-01T12:00:00+08:00") -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Editor",
        "GIT_AUTHOR_EMAIL": "editor@example.org",
        "GIT_COMMITTER_NAME": "Editor",
        "GIT_COMMITTER_EMAIL": "editor@example.org",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_DATE": date,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


@pytest.fixture
def zh_repo(tmp_path: Path) -> Path:
    """The Chinese weekly in a git repository of its own, one issue committed each Friday."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = copy("zh-weekly", tmp_path)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "digest.toml", "subscribers.csv")
    git(root, "commit", "-qm", "config")
    for name, day in (
        ("issue-101", "09"),
        ("issue-102", "16"),
        ("issue-103", "23"),
        ("drafts/issue-104", "30"),
    ):
        git(root, "add", f"docs/{name}.md")
        git(root, "commit", "-qm", name, date=f"2026-10-{day}T20:00:00+08:00")
    git(root, "mv", "docs/issue-101.md", "docs/issue-0101.md")  # a rename keeps the first date
    git(root, "commit", "-qm", "rename", date="2026-11-20T20:00:00+08:00")
    return root


def test_the_zh_weekly_runs_end_to_end_with_dates_from_git(zh_repo, run_env):
    config = str(zh_repo / "digest.toml")
    first = run_digest(["run", "--config", config], {**run_env, **SECRET})
    assert first.returncode == 0, first.stderr
    assert "sent issue-103: sent 2, failed 0" in first.stdout
    whole = feedparser.parse((zh_repo / "site" / "feeds" / "atom.xml").read_bytes())
    assert not whole.bozo
    assert [(e.title, e.published[:10]) for e in whole.entries] == [
        ("山海周刊（第 103 期）：纸的回归", "2026-10-23"),
        ("山海周刊（第 102 期）：离线优先", "2026-10-16"),
        ("山海周刊（第 101 期）：慢一点的软件", "2026-10-09"),
    ]
    assert "旧书店门口的一排纸箱" in whole.entries[0].content[0].value  # the cover picture's prose
    tools = feedparser.parse((zh_repo / "site" / "feeds" / "tools.atom.xml").read_bytes())
    assert "https://github.com/example-org/paper-cal" in [e.link for e in tools.entries]
    messages = mails(zh_repo)
    assert {m["Subject"] for m in messages} == {"山海周刊 第 103 期：纸的回归"}
    assert len(messages) == 2
    text = outputs(zh_repo)
    assert "有些学校重新要求学生手写草稿" in text  # the essay
    assert "not-an-item" not in text and "编辑备注" not in text  # in an HTML comment
    assert "旧文一篇" not in text  # skip_sections


def test_an_uncommitted_issue_is_a_clear_finding(zh_repo, run_env):
    (zh_repo / "docs" / "issue-105.md").write_text(
        "# 山海周刊（第 105 期）：新\n\n## 工具\n\n1、[x](https://x.org)\n"
    )
    linted = run_digest(["lint", "--config", str(zh_repo / "digest.toml")], run_env)
    assert linted.returncode == 1 and "Traceback" not in linted.stderr
    assert "issue-105.md:1: 致命 no-date: 文件中没有日期，也尚未提交到 git" in linted.stdout
    assert "issue-103.md:1: fatal" not in linted.stdout  # committed files have their dates


ALL_PROSE = """\
# 简报 (2026-11-20)：一篇长文

## 本期长文

很长的一段文字。

## 封面

![](https://img.example.org/cover.jpg)
"""


def test_an_issue_of_only_prose_is_fed_previewed_and_mailed(site, run_env):
    site.write_config(
        '[release]\nmode = "auto"\nsettle_minutes = 0\nsince = 2026-11-01\n'
        '[email]\ntransport = "maildir:maildir"\nfrom = "简报 <news@example.org>"\n'
        'unsubscribe_url = "https://news.example.org/unsubscribe"\n'
    )
    site.write_issue("2026-11-20.md", ALL_PROSE)
    (site.root / "subscribers.csv").write_text("email,name,sections,status,since\na@example.com,A,,active,\n")
    env = {**run_env, **SECRET}
    fed = run_digest(["feeds", "--config", str(site.config_path)], env)
    assert fed.returncode == 0, fed.stderr
    assert "Required fields" not in fed.stderr and "Traceback" not in fed.stderr
    whole = feedparser.parse((site.root / "feeds" / "atom.xml").read_bytes())
    assert "很长的一段文字" in whole.entries[0].content[0].value
    for path in (site.root / "feeds").glob("*.xml"):
        assert not feedparser.parse(path.read_bytes()).bozo, path.name
    ran = run_digest(["run", "--config", str(site.config_path)], env)
    assert ran.returncode == 0, ran.stderr
    preview = site.root / "previews" / "2026-11-20" / "email.html"
    assert "很长的一段文字" in preview.read_text(encoding="utf-8")
    (message,) = list((site.root / "maildir" / "new").iterdir())
    assert "很长的一段文字".encode() in email.message_from_bytes(message.read_bytes()).get_payload()[
        0
    ].get_payload(decode=True)


def test_an_issue_without_any_title_still_gets_feeds(site, run_env):
    site.write_issue("2026-11-20.md", "Some words first.\n\n## 论文\n\n- [](https://a.example/1)\n")
    fed = run_digest(["feeds", "--config", str(site.config_path)], run_env)
    assert fed.returncode == 0, fed.stderr
    assert "Required fields" not in fed.stderr and "Traceback" not in fed.stderr
    whole = feedparser.parse((site.root / "feeds" / "atom.xml").read_bytes())
    assert [e.title for e in whole.entries] == ["2026-11-20"]
    papers = feedparser.parse((site.root / "feeds" / "papers.atom.xml").read_bytes())
    assert [e.link for e in papers.entries] == ["https://a.example/1"]


def test_drafts_inside_or_beside_the_issues_folder_are_listed_as_drafts(site, run_env):
    site.write_issue("2026-11-20.md", "# 简报 (2026-11-20)：一\n\n## 论文\n\n- [a](https://a.example/1)\n")
    for folder in (site.issues / "drafts", site.root / "_drafts"):
        folder.mkdir()
    (site.issues / "drafts" / "2026-11-27.md").write_text(
        "# 简报 (2026-11-27)：二\n\n## 论文\n\n- [b](https://b.example)\n"
    )
    (site.root / "_drafts" / "2026-12-04.md").write_text(
        "# 简报 (2026-12-04)：三\n\n## 论文\n\n- [c](https://c.example)\n"
    )
    status = run_digest(["status", "--config", str(site.config_path)], run_env)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    # a draft is named by its folder too, so finishing it as issues/STEM.md never shares its record
    assert set(rows) == {"2026-11-20", "drafts/2026-11-27", "_drafts/2026-12-04"}
    assert " draft " in rows["drafts/2026-11-27"] and " draft " in rows["_drafts/2026-12-04"]
    fed = run_digest(["feeds", "--config", str(site.config_path)], run_env)
    assert fed.returncode == 0, fed.stderr
    whole = feedparser.parse((site.root / "feeds" / "atom.xml").read_bytes())
    assert [e.title for e in whole.entries] == ["简报 (2026-11-20)：一"]
