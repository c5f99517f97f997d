"""Lint speaks the newsletter's language: a Chinese newsletter's findings and reading report in Chinese,
an English one's in English, and every finding with the same code, line and severity in both.

One newsletter is written twice from the same lines, once in Chinese and once in English, with
the mistakes editors make (a missing link, a date that is no day, an empty file, a symlink out of
the folder, a digest too large for Gmail...), and ``digest lint`` runs on each as a real command.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import pytest

from conftest import NOW, ROOT, run_digest, write_subscribers
from digest.config import load_config
from digest.newsletter.catalog import load_issue
from digest.web.preview import render_preview

LINT_CODES = ROOT / "docs" / "reference" / "lint-codes.md"

WORDS = {
    "zh-CN": {
        "title": "周报",
        "colon": "：",
        "headline": "新芯片",
        "news": "业界新闻",
        "papers": "论文",
        "other": "杂谈",
        "a": "第一条",
        "b": "链接为空的一条",
        "c": "又一条",
        "d": "坏链接",
        "e": "全角括号",
        "f": "没有摘要",
        "g": "杂谈一条",
        "summary": "一句摘要。",
        "bold": "加粗",
        "when": "明天早上",
        "undated": "笔记",
    },
    "en": {
        "title": "Weekly",
        "colon": ": ",
        "headline": "New chips",
        "news": "News",
        "papers": "Papers",
        "other": "Other",
        "a": "First one",
        "b": "An empty link",
        "c": "Another one",
        "d": "Bad link",
        "e": "Full-width paren",
        "f": "No summary",
        "g": "An aside",
        "summary": "A summary.",
        "bold": "bold",
        "when": "tomorrow morning",
        "undated": "notes",
    },
}

FIRST = """\
# {title} (2026-11-05){colon}{headline}

## {news}

- [{a}](https://news.example.org/a)
  {summary}\a
- [{b}]()
  {summary}
- [{c}](https://news.example.org/a)
  {summary}
- [](https://news.example.org/b)
  {summary}
- [{d}](javascript:alert(1))
  {summary}
- [{e}](https://news.example.org/c）
  {summary} **{bold}
- [{f}](https://news.example.org/d)

## {other}

- [{g}](https://news.example.org/e)
  {summary}

## {papers}
"""

SECOND = """\
---
date: 2026-02-30
send_at: {when}
---
# {title} (2026-11-12){colon}{headline}

## {news}

- [{a}](https://news.example.org/f)
  {summary}
"""

THIRD = """\
---
date: 2026-11-26
---
# {title} (2026-11-19){colon}{headline}

## {news}

- [{a}](https://news.example.org/g)
  {summary}
"""

EXPECTED = {
    "control-character",
    "empty-link-target",
    "duplicate-url",
    "empty-title",
    "unsafe-url",
    "fullwidth-paren",
    "stray-bold",
    "no-summary",
    "unknown-section",
    "empty-section",
    "bad-date",
    "bad-send-at",
    "date-mismatch",
    "empty-file",
    "no-date",
    "outside-issues",
    "digest-too-large",
}
SEVERITIES = {"zh-CN": ("致命", "错误", "警告"), "en": ("fatal", "error", "warning")}
FINDING = re.compile(
    r"^(?P<path>.+?)(?::(?P<line>\d+))?: (?P<severity>fatal|error|warning|致命|错误|警告) "
    r"(?P<code>[a-z0-9]+(?:-[a-z0-9]+)*): "
)
# What a Chinese editor may read in ASCII: names of formats and tools, config keys and the
# syntax digest asks for, each as digest writes it.
ALLOWED_ASCII = re.compile(
    r"\[[\w.]+\](?: \w+)?|--force|date: YYYY-MM-DD|YYYY-MM-DD-name\.md|send_at|\]\(url\)|\bhttp\(s\)"
    r"|\b(?:Gmail|TOML|YAML|UTF-8|git|Markdown)\b|(?<!\w)\.[a-z0-9]+\b"  # and file suffixes (.png)
)


def newsletter(tmp_path: Path, language: str) -> Path:
    """The same newsletter with the same mistakes on the same lines, in ``language``."""
    words = WORDS[language]
    root = tmp_path / language
    issues = root / "issues"
    issues.mkdir(parents=True)
    (root / "digest.toml").write_text(
        "[site]\n"
        f'title = "{words["title"]}"\n'
        'base_url = "https://weekly.example.org/"\n'
        f'language = "{language}"\n'
        'timezone = "Europe/London"\n'
        "[paths]\n"
        'issues = "issues"\n'
        "[feeds.sections]\n"
        f'"{words["news"]}" = "news"\n'
        f'"{words["papers"]}" = "papers"\n'
        "[email]\n"
        'from = "digest@news.example.org"\n'
        'transport = "maildir:maildir"\n'
        'unsubscribe_mailto = "unsubscribe@weekly.example.org"\n'
        "max_html_bytes = 8000\n",
        encoding="utf-8",
    )
    write_subscribers(root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    for name, text in (("2026-11-05", FIRST), ("2026-11-12", SECOND), ("2026-11-19", THIRD)):
        (issues / f"{name}.md").write_text(text.format(**words), encoding="utf-8")
    (issues / "2026-12-03.md").write_text("", encoding="utf-8")
    (issues / f"{words['undated']}.md").write_text(f"## {words['news']}\n\n- [{words['a']}](https://x.org)\n")
    (issues / "README.md").write_text(f"# {words['title']}\n", encoding="utf-8")  # not an issue
    (issues / "images").mkdir()
    (issues / "images" / "cover.png").write_bytes(b"\x89PNG\r\n")
    outside = root / "elsewhere.md"
    outside.write_text(FIRST.format(**words), encoding="utf-8")
    os.symlink(outside, issues / "2026-12-10.md")
    return root


def lint(root: Path, run_env) -> tuple[str, str]:
    result = run_digest(["lint", "--config", str(root / "digest.toml")], run_env, cwd=root)
    assert result.returncode == 1 and "Traceback" not in result.stderr  # fatal findings and errors
    return result.stdout, result.stderr


def findings(output: str, root: Path) -> set[tuple[str, str, str, str]]:
    """(file, line, severity, code) of every finding line."""
    found = set()
    for line in output.splitlines():
        match = FINDING.match(line)
        if match and "/" in match["path"]:
            name = Path(match["path"]).name
            found.add((name, match["line"] or "0", match["severity"], match["code"]))
    return found


def documented_codes() -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", LINT_CODES.read_text(encoding="utf-8"), re.M))


def is_cjk(ch: str) -> bool:
    """Han, kana, hangul and CJK punctuation (not the full-width '）' a finding quotes from the file)."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) or "\u3000" <= ch <= "\u303f"


@pytest.fixture
def both(tmp_path, run_env):
    roots = {language: newsletter(tmp_path, language) for language in WORDS}
    return {language: (root, *lint(root, run_env)) for language, root in roots.items()}


def test_every_finding_keeps_its_code_line_and_severity_in_either_language(both):
    by_language = {}
    for language, (root, out, _) in both.items():
        seen = findings(out, root)
        assert {code for *_, code in seen} >= EXPECTED, out
        assert {code for *_, code in seen} <= documented_codes()
        words = dict(zip(SEVERITIES["en"], SEVERITIES[language], strict=True))
        assert {severity for _, _, severity, _ in seen} == set(words.values())
        # the same finding at the same line, its severity in the language's word
        by_language[language] = {
            (name.replace(WORDS[language]["undated"], "UNDATED"), line, severity, code)
            for name, line, severity, code in seen
        }
    translate = dict(zip(SEVERITIES["en"], SEVERITIES["zh-CN"], strict=True))
    english = {(name, line, translate[severity], code) for name, line, severity, code in by_language["en"]}
    assert english == by_language["zh-CN"]


def test_a_chinese_newsletters_lint_has_no_english_word(both):
    root, out, err = both["zh-CN"]
    rest = []
    for line in (out + err).splitlines():
        line = line.replace(str(root), "")
        match = FINDING.match(line)
        if match:  # the code is the finding's name in every language
            line = line[: match.start("code")] + line[match.end("code") :]
        line = re.sub(r"\S*/\S*|https?:\S+", " ", line)  # paths and links
        line = re.sub(r"“[^”]*”|'[^']*'", " ", line)  # the file's own text, quoted: keys, values, slugs
        line = ALLOWED_ASCII.sub(" ", line)
        rest += re.findall(r"[A-Za-z]{2,}", line)
    assert rest == [], rest
    # and it reads as Chinese: findings, the reading report and the totals
    assert "错误 empty-link-target: 条目“链接为空的一条”的链接地址为空“()”" in out
    assert "元数据“date”写的是 2026-11-26，标题却是 2026-11-19；采用 2026-11-26" in out
    assert "栏目：业界新闻（7），杂谈（1），论文（0）" in out
    assert f"{root / 'issues' / 'README.md'}: 不是一期：文件夹的说明文件" in out
    assert f"{root / 'issues' / 'images'}: 不是一期：含有 1 个非 Markdown 文件（.png）" in out
    assert "覆盖率" in out and re.search(r"^\d+ 个文件：\d+ 致命，\d+ 错误，\d+ 警告$", err.strip(), re.M)


def test_an_english_newsletters_lint_has_no_chinese(both):
    root, out, err = both["en"]
    assert "".join(ch for ch in out + err if is_cjk(ch)) == ""
    assert "error empty-link-target: item 'An empty link' has an empty link target '()'" in out
    assert "the metadata's 'date' says 2026-11-26, but the title says 2026-11-19; using 2026-11-26" in out
    assert f"{root / 'issues' / '2026-11-05.md'}: sections: News (7), Other (1), Papers (0)" in out
    assert f"{root / 'issues' / 'README.md'}: not an issue: the folder's README" in out
    assert re.search(r"^\d+ file\(s\): \d+ fatal, \d+ error, \d+ warning$", err.strip(), re.M)


def test_a_chinese_newsletters_status_and_preview_speak_chinese(tmp_path, run_env):
    root = newsletter(tmp_path, "zh-CN")
    status = run_digest(["status", "--config", str(root / "digest.toml")], run_env, cwd=root)
    assert status.returncode == 0, status.stderr
    header = status.stdout.splitlines()[0].split()
    assert header[:4] == ["期", "日期", "副标题", "条目"] and "退信/投诉" in header
    config = load_config(root / "digest.toml")
    preview = render_preview(config, load_issue(config, "2026-11-05"), NOW)
    assert "错误 empty-link-target: 条目“链接为空的一条”的链接地址为空“()”" in preview.report
    assert "empty link target" not in preview.report


def test_why_a_file_cannot_be_read_is_said_in_the_newsletters_language(tmp_path):
    from digest.newsletter.lint import lint_file
    from digest.newsletter.parse import ParseOptions

    folder = tmp_path / "2026-12-24.md"
    folder.mkdir()
    (finding,) = lint_file(folder, ParseOptions()).findings
    assert (finding.code, finding.message) == ("unreadable", "is a directory, not an issue file")
    assert finding.format(folder, "zh-CN") == f"{folder}: 致命 unreadable: 是文件夹，不是期刊文件"
    assert finding.format(folder, "ko") == f"{folder}: fatal unreadable: is a directory, not an issue file"
