"""The outline and items come from the document's own structure, whatever newsletter wrote it.

Each test writes a small issue in a shape a newsletter uses (our own text, no real
newsletter's) and checks the reading a subscriber relies on: the sections, the items
in them, and that no link is lost on the way to the mail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.newsletter.lint import format_folder_reading, format_reading, lint_file, read_links
from digest.newsletter.model import Severity
from digest.newsletter.outline import clean_heading, led_by_link, outline
from digest.newsletter.parse import ParseOptions, parse_issue

P = Path("2026-03-02-weekly.md")
CJK = re.compile(r"[\u3400-\u9fff\u3040-\u30ff]")


def sections_of(issue):
    return [(s.name, [i.url for i in s.items]) for s in issue.sections]


def test_sections_at_h3_with_the_title_from_front_matter():
    issue = parse_issue(
        "---\ntitle: 'Issue #7'\n---\nWelcome.\n\n### News\n\n- [a](https://a.org)\n\n"
        "### Tools\n\n- [b](https://b.org)\n",
        P,
    )
    assert issue.title == "Issue #7" and issue.number == 7
    assert sections_of(issue) == [("News", ["https://a.org"]), ("Tools", ["https://b.org"])]
    assert issue.warmup == ()


def test_top_level_h1_sections_under_a_metadata_title_have_h2_subsections():
    issue = parse_issue(
        "Title: #3 - Cats and dogs\nDate: 2026-03-02\n\n# News\n\n## Cats\n\n- [c](https://c.org)\n\n"
        "## Dogs\n\n- [d](https://d.org)\n\n# Jobs\n\n- [j](https://j.org)\n",
        Path("x.md"),
    )
    assert issue.title == "#3 - Cats and dogs"
    news, jobs = issue.sections
    assert news.subsections == ("Cats", "Dogs") and [i.subsection for i in news.items] == ["Cats", "Dogs"]
    assert [i.url for i in jobs.items] == ["https://j.org"]


def test_a_single_stray_heading_does_not_change_the_section_level():
    issue = parse_issue(
        "# W (2026-03-02)\n\n## A\n\n- [a](https://a.org)\n\n## B\n\n- [b](https://b.org)\n\n### Note\n\n"
        "- [n](https://n.org)\n",
        P,
    )
    assert [s.name for s in issue.sections] == ["A", "B"]
    assert issue.sections[1].subsections == ("Note",)


@pytest.mark.parametrize(
    ("headings", "front_title", "title_index", "level"),
    [
        ([(1, "T"), (2, "a"), (2, "b")], "", 0, 2),
        ([(1, "Weekly #12"), (2, "a"), (2, "b")], "Weekly 12", 0, 2),  # the title line repeats the metadata's
        ([(1, "News"), (2, "a"), (2, "b")], "Weekly 12", -1, 1),  # a lone top section under a metadata title
        ([(1, "a"), (1, "b"), (2, "x")], "T", -1, 1),
        ([(3, "a"), (3, "b"), (2, "c")], "T", -1, 3),
        ([(2, "a"), (1, "odd"), (2, "b")], "", -1, 2),
        ([(1, "T"), (3, "[x](u)"), (3, "[y](v)"), (2, "s")], "", 0, 2),  # link headings are items
        ([], "", -1, 2),
    ],
)
def test_the_outline_rule(headings, front_title, title_index, level):
    shape = outline(headings, front_title)
    assert (shape.title_index, shape.section_level) == (title_index, level)


def test_link_headings_are_items_with_their_text():
    issue = parse_issue(
        "# Weekly (2026-03-02)\n\n## Articles\n\n### 🐢 [Slow and steady](https://s.org)\n\n"
        "[@ed](https://ed.org): worth a read.\n\n1. first point\n2. second point\n\n"
        "### [#123: Faster builds](https://b.org)\n\nBuilds are faster.\n",
        P,
    )
    (section,) = issue.sections
    first, second = section.items
    assert (first.labels, first.title, first.url) == (("🐢",), "Slow and steady", "https://s.org")
    assert 'href="https://ed.org"' in first.summary_html and "<ol>" in first.summary_html
    assert (second.title, second.url, second.summary) == (
        "#123: Faster builds",
        "https://b.org",
        "Builds are faster.",
    )


def test_heading_names_are_plain_text_and_keep_their_links():
    issue = parse_issue(
        "# W (2026-03-02)\n\n## **Grin**\n\n- [a](https://a.org)\n\n## [Releases](https://r.org)\n\n"
        "Text.\n\n### `crate` news\n\nMore.\n",
        P,
    )
    grin, releases = issue.sections
    assert grin.name == "Grin" and releases.name == "Releases"
    assert releases.subsections == ("crate news",)
    assert 'href="https://r.org"' in releases.prose[0].html
    assert clean_heading("[**Bold** link](https://x.org)：") == "Bold link"


def test_consecutive_numbered_lines_are_one_item_each():
    issue = parse_issue("# W (2026-03-02)\n\n## A\n\n1、[a](https://a.org)\n2、[b](https://b.org)\n", P)
    assert sections_of(issue) == [("A", ["https://a.org", "https://b.org"])]


def test_a_numbered_quote_with_its_source_is_an_item_and_no_error():
    issue = parse_issue(
        "# 周刊 (2026-03-02)\n\n## 言论\n\n1、\n\n> 慢一点，稳一点。\n\n——[某人](https://q.org/1)\n\n"
        "2、\n\n> Less is more.\n\n[Someone](https://q.org/2)\n",
        P,
    )
    first, second = issue.sections[0].items
    assert (first.title, first.source, first.url) == ("慢一点，稳一点。", "某人", "https://q.org/1")
    assert (second.title, second.url) == ("Less is more.", "https://q.org/2")
    assert not [f for f in issue.findings if f.severity is not Severity.WARNING]


@pytest.mark.parametrize(
    ("line", "title", "url"),
    [
        ("- [[RFC 12] Faster sync](https://x.org/12)", "[RFC 12] Faster sync", "https://x.org/12"),
        ("- [Notes [2]](https://x.org/n)", "Notes [2]", "https://x.org/n"),
        ("- [Spaces](<https://x.org/a b>)", "Spaces", "https://x.org/a b"),
        ("- **New:** [Label first](https://x.org/l)", "Label first", "https://x.org/l"),
        ("- **[Bold link](https://x.org/b)** — text", "Bold link", "https://x.org/b"),
        ("- <https://x.org/auto> an autolink", "an autolink", "https://x.org/auto"),
        ("- https://x.org/bare a bare URL", "a bare URL", "https://x.org/bare"),
    ],
)
def test_link_texts_and_targets_in_every_spelling(line, title, url):
    issue = parse_issue(f"# W (2026-03-02)\n\n## A\n\n{line}\n", P)
    (item,) = issue.items
    assert (item.title, item.url) == (title, url)


@pytest.mark.parametrize(
    ("text", "led"),
    [
        ("[a](u) and more", True),
        ("_Breaking:_ [a](u)", True),
        ("🌟 🐕 [a](u)", True),
        ("[tag] [a](u)", True),
        ("Some news about [a](u)", False),
        ("[a][] with no definition", False),
        ("[a][ref] also a reference", False),
        ("[unclosed title", True),
        ("[outer [inner](u) text", False),
    ],
)
def test_what_leads_an_item(text, led):
    assert led_by_link(text) is led


def test_hard_wrapped_english_prose_reads_as_one_line():
    issue = parse_issue(
        "# W (2026-03-02)\n\n## A\n\n- [a](https://a.org)\n\n"
        "  This summary was wrapped\n  by the editor's editor.\n",
        P,
    )
    html = issue.items[0].summary_html
    assert "<br" not in html and "wrapped\nby" in html
    japanese = parse_issue(
        "# W (2026-03-02)\n\n## A\n\n- [a](https://a.org)\n\n  日本語の文が途中で\n  折り返されています\n", P
    )
    assert "途中で折り返されています" in japanese.items[0].summary_html


def test_a_picture_without_alt_text_shows_its_file_name_in_no_language():
    issue = parse_issue(
        "# W (2026-03-02)\n\n## A\n\n- [a](https://a.org)\n\n  ![](https://i.org/p/cover.png)\n", P
    )
    html = issue.items[0].summary_html
    assert "cover.png" in html and not CJK.search(html)


def test_english_findings_carry_no_chinese():
    issue = parse_issue(
        "---\ntitle: Weekly\n---\n\n## A\n\n- [a](https://a.org)\n\n  Text.\n\n- [b](https://b.org)\n\n"
        "- [](https://c.org)\n\n  More text.\n\n## Empty\n",
        P,
    )
    assert {"no-summary", "empty-title", "empty-section"} <= {f.code for f in issue.findings}
    assert not [f.message for f in issue.findings if CJK.search(f.message)]
    assert not [f for f in issue.findings if f.severity is not Severity.WARNING]


def test_no_title_anywhere_is_a_warning_titled_after_the_file():
    text = "---\ndate: 2026-03-02\n---\n## News\n\n- [a](https://a.org)\n"
    issue = parse_issue(text, Path("2026/issue-12.md"), ParseOptions())
    assert issue.title == "Issue 12"
    assert [f.severity for f in issue.findings if f.code == "no-title"] == [Severity.WARNING]


def test_a_front_matter_title_is_split_and_the_title_line_gives_the_date():
    issue = parse_issue(
        "---\ntitle: 'Weekly: faster builds'\n---\n# Weekly (2026-03-02)\n\n## A\n\n- [a](https://a.org)\n",
        Path("x.md"),
    )
    assert (issue.title, issue.headline, issue.full_title) == (
        "Weekly",
        "faster builds",
        "Weekly: faster builds",
    )
    assert issue.date.isoformat() == "2026-03-02"


def test_an_issue_number_right_after_han_text():
    issue = parse_issue("# 老司机周报#109 | 2020.04.13\n\n## 文章\n\n- [a](https://a.org)\n", Path("x.md"))
    assert issue.number == 109 and issue.date.isoformat() == "2020-04-13"


REFERENCE_ISSUE = """\
# W (2026-03-02)

## News

- **Label:** [Some text][first ref] and a line that is wrapped before its [second
  ref] and a [bare one][] too.
- [Led by a reference][first ref] is an item.

Trailing prose with <https://auto.org/x> and https://bare.org/y.

<!-- [hidden](https://hidden.org) -->

```
https://in-code.org
```

## [Back issues](https://back.org)

[first ref]: https://one.org
[second ref]: https://two.org
[bare one]: https://three.org
"""


def test_every_link_of_the_body_is_shown_and_lint_says_where():
    issue = parse_issue(REFERENCE_ISSUE, P)
    reading = read_links(REFERENCE_ISSUE, issue)
    assert reading.links == 7 and reading.missing == ()  # not the comment's, not the code's
    assert reading.in_items == 6 and reading.coverage == 1.0  # the prose after an item is its text
    labelled, led = issue.items
    assert (labelled.labels, labelled.url, led.url) == (("Label",), "https://one.org", "https://one.org")
    assert (
        'href="https://two.org"' in labelled.summary_html
        and 'href="https://three.org"' in labelled.summary_html
    )
    assert 'href="https://bare.org/y"' in led.summary_html
    lines = format_reading(P, reading)
    assert lines[0] == f"{P}: sections: News (2), Back issues (0)"
    assert (
        lines[1] == f"{P}: 7 links: 6 in items, 1 in prose, 0 left out by rule, 0 not shown; coverage 100.0%"
    )
    assert lines[2] == f"{P}: links in prose, not in any item (line, link): 17 https://back.org"


def test_lint_reads_a_whole_folder(tmp_path):
    (tmp_path / "2026-03-02.md").write_text(REFERENCE_ISSUE, encoding="utf-8")
    (tmp_path / "2026-03-09.md").write_text(
        "# W (2026-03-09)\n\n## News\n\n- [a](https://a.org)\n", encoding="utf-8"
    )
    reports = [lint_file(p, ParseOptions()) for p in sorted(tmp_path.iterdir())]
    first, second = format_folder_reading(reports)
    assert (
        first
        == "2 of 2 file(s) read as issues; sections: News (2 issues, 3 items), Back issues (1 issue, 0 items)"
    )
    assert second == "8 links: 7 in items, 1 in prose, 0 left out by rule, 0 not shown; coverage 100.0%"


def test_cli_lint_prints_the_reading(run_env, tmp_path):
    from conftest import run_digest

    path = tmp_path / "2026-03-02.md"
    path.write_text(REFERENCE_ISSUE, encoding="utf-8")
    result = run_digest(["lint", str(path)], run_env, cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert f"{path}: sections: News (2), Back issues (0)" in result.stdout.splitlines()
    assert "coverage 100.0%" in result.stdout


def test_a_credit_line_before_the_sections_is_content_and_a_footer_only_ends_the_issue():
    issue = parse_issue(
        '# W (2026-03-02)\n\nEditor: [Jane](https://jane.org)\n\n<div><a href="https://sponsor.org">Sponsor</a></div>\n\n'
        "## News\n\n- [a](https://a.org)\n\n---\n\nLicense: CC BY (https://cc.org)\n",
        P,
    )
    assert [i.url for i in issue.items] == ["https://a.org"]
    shown = " ".join(p.html for p in issue.preamble) + issue.intro_html
    assert "https://jane.org" in shown and "https://sponsor.org" in shown
    assert [p.markdown for p in issue.left_out] == ["License: CC BY (https://cc.org)"]


def test_liquid_reads_as_the_site_shows_it():
    issue = parse_issue(
        '---\ntitle: W\ndate: 2026-03-02\n---\n{% assign qa = "https://qa.example/a/" %}\n\n## Q&A\n\n'
        "- [Why?]({{qa}}42) answered.\n\n{% include sponsor.html %}\n\n"
        '{% highlight swift %}\nlet url = "https://code.example"\n{% endhighlight %}\n',
        P,
    )
    (item,) = issue.items
    assert item.url == "https://qa.example/a/42"
    shown = item.summary_html + "".join(p.html for s in issue.sections for p in s.prose)
    assert "{%" not in shown and "<pre><code" in shown


def test_setext_titles_and_text_after_a_separator():
    issue = parse_issue(
        "Weekly 12 (2026-03-02)\n======================\n\nIntro.\n\nNews\n====\n\n"
        "- [a](https://a.org): first thing\n- [b](https://b.org) — second\n\nTools\n=====\n\n1、[c](https://c.org)：工具\n",
        Path("x.md"),
    )
    assert (issue.title, issue.intro) == ("Weekly 12 (2026-03-02)", "Intro.")
    assert [(s.name, [(i.title, i.summary) for i in s.items]) for s in issue.sections] == [
        ("News", [("a", "first thing"), ("b", "second")]),
        ("Tools", [("c", "工具")]),
    ]
