"""Repairs of hand-written slips in real issues' shapes, each reported by lint with its line.

The texts are written for these tests in the shapes the real newsletter has:
a summary that opens in bold, a numbered list with one number glued to its
text, and a label glued to its title.
"""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_SECTIONS
from digest.newsletter import parse as _parse
from digest.newsletter.parse import ParseOptions

# The test newsletter's own section names: digest knows none of its own.
SECTIONS = ParseOptions(section_slugs=TEST_SECTIONS)


def parse_issue(data, path, options=None):
    return _parse.parse_issue(data, path, options or SECTIONS)


HEAD = "# 简报 (2026-11-20)：新一期\n\n## 论文\n\n"


def parse(body: str):
    return parse_issue(HEAD + body, Path("2026-11-20.md"))


def codes(issue) -> list[tuple[int, str]]:
    return [(f.line, f.code) for f in issue.findings]


def test_summary_that_opens_in_bold_keeps_its_bold():
    issue = parse(
        "- [某论文 | 某媒体](https://a.example.org/x)\n"
        "摘要：**开头的一句加粗**，其后是普通的文字，又有**一段加粗**。\n"
    )
    html = issue.items[0].summary_html
    assert html == "<p><strong>开头的一句加粗</strong>，其后是普通的文字，又有<strong>一段加粗</strong>。</p>"
    assert "**" not in html and codes(issue) == []


def test_bold_summary_labels_still_read_as_labels():
    for line in ("**摘要：**正文。", "**摘要**：正文。", "摘要：正文。"):
        issue = parse(f"- [某论文 | 某媒体](https://a.example.org/x)\n{line}\n")
        assert issue.items[0].summary_html == "<p>正文。</p>", line


def test_a_bold_never_closed_is_dropped_with_a_warning():
    issue = parse("- [某论文 | 某媒体](https://a.example.org/x)\n摘要：**开头加粗却忘了收尾，后文照常。\n")
    assert issue.items[0].summary_html == "<p>开头加粗却忘了收尾，后文照常。</p>"
    assert codes(issue) == [(6, "stray-bold")]


def test_numbered_line_without_a_space_stays_in_its_list():
    issue = parse(
        "- [某综述 | 某媒体](https://a.example.org/y)\n"
        "摘要：本文梳理三个方向：\n"
        "    1. 动态图: 说明甲。\n"
        "    2.硬件友好: 说明乙。\n"
        "    3. 协同设计: 说明丙。\n"
    )
    html = issue.items[0].summary_html
    assert html.count("<ol>") == 1 and html.count("<li>") == 3
    assert "<li>硬件友好: 说明乙。</li>" in html
    assert codes(issue) == [(8, "numbered-no-space")]


def test_a_list_with_every_number_glued_is_a_list():
    issue = parse(
        "- [某引擎 | 某媒体](https://a.example.org/z)\n摘要：它有如下优势：\n1.快：推理快。\n2.全：模型多。\n"
    )
    assert issue.items[0].summary_html.count("<li>") == 2
    assert codes(issue) == [(7, "numbered-no-space"), (8, "numbered-no-space")]


def test_a_version_number_is_not_a_list_item():
    issue = parse("- [某框架 | 某媒体](https://a.example.org/v)\n摘要：说明如下。\n2.x 只拆分了后端。\n")
    assert "<li>" not in issue.items[0].summary_html and codes(issue) == []


def test_label_glued_to_the_title_is_a_label_then_the_title():
    issue = parse(
        "- [[ICLR2022]BiBERT：某个二值化模型 | 某媒体](https://a.example.org/b)\n摘要：甲。\n"
        "- [ICLR2022][GiraffeDet：某个检测器 | 某媒体](https://a.example.org/g)\n摘要：乙。\n"
    )
    first, second = issue.items
    assert (first.labels, first.title, first.source) == (("ICLR2022",), "BiBERT：某个二值化模型", "某媒体")
    assert (second.labels, second.title) == (("ICLR2022",), "GiraffeDet：某个检测器")
    assert codes(issue) == [(5, "glued-label"), (7, "glued-label")]


def test_a_label_with_a_space_is_no_finding():
    issue = parse("- [ICLR2022] [BiBERT：某个模型 | 某媒体](https://a.example.org/b)\n摘要：甲。\n")
    assert issue.items[0].labels == ("ICLR2022",) and codes(issue) == []
