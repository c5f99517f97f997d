"""Three newsletter shapes: every item link in its section (and subsection), none from comments or code.

The shapes are those of the three example newsletters: 嵌入式AI简报 (examples/issues),
an English Pelican weekly (examples/pelican-weekly) and a Chinese weekly with numbered
items and no dates in its files (examples/zh-weekly).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from conftest import EXAMPLES
from digest.config import config_from_mapping, load_config
from digest.newsletter.model import Issue
from digest.newsletter.parse import ParseOptions, UndatedIssue, parse_issue, path_key, read_issue

PELICAN = EXAMPLES / "pelican-weekly"
ZH = EXAMPLES / "zh-weekly"


def links(issue: Issue) -> list[tuple[str, str, str]]:
    return [(s.name, i.subsection, i.url) for s in issue.sections for i in s.items]


def everything(issue: Issue) -> str:
    """Every text and HTML of the model a reader could see, in one string."""
    parts = [issue.title, issue.headline, issue.intro, issue.intro_html, *issue.warmup_html]
    parts += [p.html for p in issue.preamble]
    for section in issue.sections:
        parts += [section.name, *section.subsections, *(p.html for p in section.prose)]
        for item in section.items:
            parts += [item.title, item.url, item.summary_html, *(link.url for link in item.links)]
    return "\n".join(parts)


def pelican_options() -> ParseOptions:
    return ParseOptions.from_config(load_config(PELICAN / "digest.toml"))


def test_pelican_items_are_in_their_sections_and_subsections():
    issue = read_issue(PELICAN / "content" / "tern-weekly-41.md", pelican_options())
    assert (issue.title, issue.number, issue.date) == ("Tern Weekly 41", 41, dt.date(2026, 10, 14))
    assert issue.published.hour == 9  # the Date: line's time
    assert issue.intro.startswith("Hello and welcome")
    assert links(issue) == [
        ("Updates from the Community", "Official", "https://blog.example.org/tern/0.9-release"),
        ("Updates from the Community", "Official", "https://blog.example.org/tern/road-to-1.0"),
        ("Updates from the Community", "Project Updates", "https://gull.example.com/news/2.0"),
        ("Updates from the Community", "Project Updates", "https://video.example.net/watch/shell-afternoon"),
        ("Papers and Talks", "", "https://papers.example.edu/region-inference.pdf"),
        ("Call for Participation", "", "https://github.com/example-org/tern-lsp/issues/81"),
        ("Call for Participation", "", "https://github.com/example-org/gull/issues/12"),
    ]
    news = issue.sections[0]
    assert news.subsections == ("Official", "Project Updates")
    assert [p.name for p in news.parts] == ["", "Official", "Project Updates"]
    assert news.items[3].labels == ("video",)
    prose = {s.name: s.prose[0].html for s in issue.sections if s.prose and not s.items}
    assert set(prose) == {"Tool of the Week", "Upcoming Events", "Quote of the Week"}
    assert "<table>" in prose["Upcoming Events"] and "<blockquote>" in prose["Quote of the Week"]
    assert "Jobs" not in [s.name for s in issue.sections]  # skip_sections
    assert "How to contribute" not in [s.name for s in issue.sections]
    assert not any(f.severity in ("fatal", "error") for f in issue.findings)
    assert "tern-http" not in everything(issue) and "tern-docs" not in everything(issue)  # in a comment


def test_pelican_reference_links_and_irc_links_are_read():
    issue = read_issue(PELICAN / "content" / "tern-weekly-42.md", pelican_options())
    assert (
        "Updates from the Community",
        "Observations and Thoughts",
        "https://essays.example.org/why-no-null",
    ) in (links(issue))
    assert 'href="irc://irc.example.net/tern"' in issue.intro_html
    assert "why-no-null]:" not in everything(issue)  # the definition line is not content
    assert "Not a real task" not in everything(issue)
    assert [s.name for s in issue.sections if not s.items] == ["Call for Participation", "Quote of the Week"]


def test_pelican_draft_by_status_and_folder():
    draft = read_issue(PELICAN / "content" / "drafts" / "tern-weekly-44.md", pelican_options())
    assert draft.draft and draft.number == 44
    text = "Title: T\nDate: 2026-11-04\nStatus: draft\n\n## A\n\n* [a](https://a.org)\n"
    assert parse_issue(text, Path("content/t.md")).draft
    assert not parse_issue(text.replace("draft", "published"), Path("content/t.md")).draft


def zh_options(dates: dict[str, dt.datetime] | None = None) -> ParseOptions:
    config = load_config(ZH / "digest.toml")
    return ParseOptions.from_config(config, dates)


def test_zh_numbered_items_with_their_paragraphs_and_images():
    path = ZH / "docs" / "issue-101.md"
    stamp = dt.datetime(2026, 10, 9, 20, 30, tzinfo=dt.UTC)
    issue = read_issue(path, zh_options({path_key(path): stamp}))
    assert issue.date == dt.date(2026, 10, 10)  # 20:30 UTC is the next morning in Shanghai
    assert (issue.title, issue.headline, issue.number) == ("山海周刊（第 101 期）", "慢一点的软件", 101)
    assert links(issue) == [
        ("科技动态", "", "https://news.example.com/streetlights"),
        ("科技动态", "", "https://news.example.com/phone-weather"),
        ("文章", "", "https://blog.example.net/error-messages"),
        ("文章", "", "https://notes.example.com/plain-text"),
        ("工具", "", "https://github.com/example-org/tidy-notes"),
    ]
    first = issue.sections[2].items[0]
    assert "路灯只保持最低亮度" in first.summary_html
    assert 'href="https://img.example.org/shanhai/101-lights.jpg"' in first.summary_html  # the image
    article = issue.sections[3].items[0]
    assert article.labels == ("英文",) and article.title == "为什么命令行工具应该有好的错误信息"
    prose = {s.name: s.prose[0].html for s in issue.sections if not s.items}
    assert list(prose) == ["封面图", "本周话题：慢一点的软件", "言论"]
    assert "101-cover.jpg" in prose["封面图"] and "稳定的界面" in prose["本周话题：慢一点的软件"]
    assert "往年回顾" not in [s.name for s in issue.sections]
    assert not any(f.severity in ("fatal", "error") for f in issue.findings)


def test_zh_comment_in_the_header_hides_its_numbered_line():
    path = ZH / "docs" / "issue-103.md"
    issue = read_issue(path, zh_options({path_key(path): dt.datetime(2026, 10, 23, tzinfo=dt.UTC)}))
    assert "not-an-item" not in everything(issue) and "编辑备注" not in everything(issue)
    assert [s.name for s in issue.sections if s.items] == ["科技动态", "文章", "工具"]


def test_zh_file_not_committed_is_a_clear_fatal_finding():
    with pytest.raises(UndatedIssue) as caught:
        read_issue(ZH / "docs" / "issue-102.md", zh_options({}))
    (found,) = [f for f in caught.value.findings if f.code == "no-date"]
    assert "not committed" in found.message


def test_embedded_ai_shape_keeps_every_bullet_in_its_section():
    for path in sorted((EXAMPLES / "issues").glob("*.md")):
        issue = read_issue(path)
        expected = []
        section = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            heading = re.match(r"^## (.*?)\s*$", line)
            if heading:
                section = heading.group(1).rstrip("：:")
            elif section and "往期回顾" not in section and re.match(r"^- ", line):
                url = re.search(r"\]\(([^)\s]+)", line)
                expected.append((section, url.group(1) if url else ""))
        assert len(links(issue)) == len(expected), path.name
        found = [(s, u if want else "") for (s, _, u), (_, want) in zip(links(issue), expected, strict=True)]
        assert found == expected, path.name  # an empty target () is repaired: only its section counts


MIXED = """\
# Weekly (2026-03-02): mixed

<!-- - [comment in header](https://hidden.example/1) -->

## News

<!--
- [comment](https://hidden.example/2)
## Not a heading
-->

- [real one](https://real.example/1)

```
- [code](https://hidden.example/3)
## also not a heading
```

    [indented code](https://hidden.example/4)

- [real two](https://real.example/2) <!-- [inline](https://hidden.example/5) -->

~~~md
1、[tilde code](https://hidden.example/6)
~~~
"""


@pytest.mark.parametrize("opener", ["", "- [first](https://real.example/0)\n\n"])
def test_nothing_in_a_comment_or_code_block_becomes_an_item_or_a_link(opener):
    issue = parse_issue(MIXED.replace("## News\n", "## News\n\n" + opener), Path("x.md"))
    assert [s.name for s in issue.sections] == ["News"]
    urls = [i.url for i in issue.items]
    assert urls[-2:] == ["https://real.example/1", "https://real.example/2"]
    assert not any("hidden.example" in u for u in urls)
    assert not any("hidden.example" in link.url for i in issue.items for link in i.links)
    assert 'href="https://hidden.example' not in everything(issue)
    assert "comment in header" not in everything(issue)


def test_numbered_items_in_each_spelling():
    text = (
        "# W (2026-03-02)\n\n## A\n\n1. [one](https://a.org/1)\n\nBody one.\n\n2. [two](https://a.org/2)\n\n"
        "## B\n\n**1、[three](https://b.org/3)**\n\nBody three.\n\n- a point\n- another\n\n"
        "**2、four**\n\n1）[five](https://b.org/5)\n"
    )
    issue = parse_issue(text, Path("x.md"))
    a, b = issue.sections
    assert [i.url for i in a.items] == ["https://a.org/1", "https://a.org/2"]
    assert a.items[0].summary == "Body one."
    assert [(i.title, i.url) for i in b.items] == [("three", "https://b.org/3"), ("five", "https://b.org/5")]
    assert "<li>a point</li>" in b.items[0].summary_html
    assert "four" in b.items[0].summary  # a numbered paragraph no link leads is text, where it stood


def test_bullet_labels_and_sources():
    issue = parse_issue(
        "# W (2026-03-02)\n## A\n- [talk] [A title | Some Blog](https://a.org)\n", Path("x.md")
    )
    (item,) = issue.items
    assert (item.labels, item.title, item.source) == (("talk",), "A title", "Some Blog")


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("irc://irc.example.net/tern", True),
        ("mailto:editor@example.org", True),
        ("xmpp:room@example.org", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
    ],
)
def test_only_dangerous_schemes_are_unsafe(url, safe):
    issue = parse_issue(f"# W (2026-03-02)\n## A\n- [t]({url})\n", Path("x.md"))
    assert (issue.items[0].url == url) is safe
    assert ("unsafe-url" in {f.code for f in issue.findings}) is not safe


# -- metadata ------------------------------------------------------------------------------------


def test_hugo_toml_front_matter_with_draft():
    text = '+++\ntitle = "Hugo Weekly"\ndate = 2026-05-06T08:00:00+02:00\ndraft = true\n+++\n\n## A\n- [a](https://a.org)\n'
    issue = parse_issue(text, Path("post.md"))
    assert (issue.title, issue.date, issue.draft) == ("Hugo Weekly", dt.date(2026, 5, 6), True)
    assert issue.published.utcoffset() == dt.timedelta(hours=2)


def test_jekyll_front_matter_and_a_dated_file_name():
    text = "---\ntitle: 'Jekyll Weekly #665'\n---\n\n## A\n- [a](https://a.org)\n"
    issue = parse_issue(text, Path("_posts/2026-05-07-weekly.md"))
    assert (issue.title, issue.number, issue.date, issue.draft) == (
        "Jekyll Weekly #665",
        665,
        dt.date(2026, 5, 7),
        False,
    )


def test_a_date_line_wins_over_the_file_name():
    text = "Title: W\nDate: 2026-05-08\n\n## A\n- [a](https://a.org)\n"
    issue = parse_issue(text, Path("2026-05-01-w.md"))
    assert issue.date == dt.date(2026, 5, 8)
    assert "date-mismatch" in {f.code for f in issue.findings}


def test_issue_number_from_the_file_name():
    issue = parse_issue("# W (2026-05-08)\n## A\n- [a](https://a.org)\n", Path("docs/issue-300.md"))
    assert issue.number == 300
    assert parse_issue("# W (2026-05-08)\n## A\n- [a](https://a.org)\n", Path("2026-05-08.md")).number is None


def test_a_body_line_with_a_colon_is_not_metadata():
    issue = parse_issue("Note: this is prose\n\n# W (2026-05-08)\n## A\n- [a](https://a.org)\n", Path("x.md"))
    assert issue.title == "W (2026-05-08)"


# -- [newsletter] settings --------------------------------------------------------------------------


def options(**newsletter) -> ParseOptions:
    return ParseOptions.from_config(config_from_mapping({"newsletter": newsletter}, Path("/x/digest.toml")))


SETTINGS = "# W (2026-05-08)\n## Links\n- [a](https://a.org)\n## Essay\n- [b](https://b.org)\n## Jobs\n- [c](https://c.org)\n"


def test_settings_say_which_sections_hold_items_prose_or_nothing():
    issue = parse_issue(SETTINGS, Path("x.md"), options(prose_sections=["essay"], skip_sections=["JOBS"]))
    assert [(s.name, len(s.items), len(s.prose)) for s in issue.sections] == [
        ("Links", 1, 0),
        ("Essay", 0, 1),
    ]
    only = parse_issue(SETTINGS, Path("x.md"), options(item_sections=["Links"]))
    assert [(s.name, len(s.items)) for s in only.sections] == [("Links", 1), ("Essay", 0), ("Jobs", 0)]


def test_bad_settings_name_the_key():
    from digest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"newsletter\.date_from"):
        options(date_from="mtime")
    with pytest.raises(ConfigError, match=r"newsletter\.skip_sections"):
        options(skip_sections="Jobs")


def test_an_issue_of_only_prose_is_an_issue():
    issue = parse_issue(
        "# W (2026-05-08)\n\n## Essay\n\nSome thoughts.\n\n## Picture\n\n![](https://i.example/p.jpg)\n",
        Path("x.md"),
    )
    assert [s.name for s in issue.sections] == ["Essay", "Picture"]
    assert not issue.items
    assert not {"no-items", "empty-section"} & {f.code for f in issue.findings}


def test_multimarkdown_keys_with_spaces_and_a_title_number():
    text = "Title: The Weekly No. 12\nBase Header Level: 2\nDate: 2026-05-08\n\n## A\n- [a](https://a.org)\n"
    issue = parse_issue(text, Path("x.md"))
    assert (issue.title, issue.number, issue.date) == ("The Weekly No. 12", 12, dt.date(2026, 5, 8))
    assert (
        parse_issue("# W (2026-05-08): no 1 answer\n## A\n- [a](https://a.org)\n", Path("x.md")).number
        is None
    )


def test_tagline_and_intro_keep_to_their_own_lines():
    text = (
        "# 简报 (2024-03-01)：x\n\n**关注部署**\n<font>注：PC端请用手机打开</font>\n\n"
        "> 导读：本期三条。\n紧接着的一段话。\n\n## 论文\n- [a](https://a.org)\n"
    )
    issue = parse_issue(text, Path("x.md"))
    assert (issue.tagline, issue.intro) == ("关注部署", "本期三条。")
    assert [p.markdown for p in issue.preamble] == ["紧接着的一段话。"]


def test_a_bullet_no_link_leads_is_prose_that_keeps_its_links():
    issue = parse_issue(
        "# W (2026-03-02)\n## A\n* Foo released [v2.0](https://foo.org/2) and [v2.1](https://foo.org/3)\n"
        "* **Note:** [Bar](https://bar.org) is out\n",
        Path("x.md"),
    )
    (section,) = issue.sections
    assert [(i.labels, i.title, i.url) for i in section.items] == [(("Note",), "Bar", "https://bar.org")]
    (prose,) = section.prose
    assert 'href="https://foo.org/2"' in prose.html and 'href="https://foo.org/3"' in prose.html
    assert "no-link" not in {f.code for f in issue.findings}
