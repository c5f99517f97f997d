"""The scanner on its own: which block goes where, and what is noted on the way."""

from __future__ import annotations

from digest.newsletter.scan import FindingLog, clean_heading, scan_text

ISSUE = """\
---
draft: false
---
# 简报 (2026-03-01)：标题
**关注部署**

> 导读：第一句，
> 第二句。

- 甲公司：发布芯片
  续行
乙公司：完成融资

## 论文

- [A](https://a.org)
摘要：一行
  缩进的续行
孤立文字? 不，这是续行

## [往期回顾](https://example.org)

- [旧的一期](https://old.example.org)
"""


def scan(text: str | bytes):
    log = FindingLog()
    return scan_text(text, log), log


def test_header_parts_are_sorted_into_their_places():
    result, log = scan(ISSUE)
    assert result.front == {"draft": False}
    assert result.title == (4, "简报 (2026-03-01)：标题")
    assert result.tagline == "关注部署"
    assert result.intro == "第一句， 第二句。"
    assert result.intro_line == 7
    assert result.warmup == ((10, "甲公司：发布芯片 续行"), (12, "乙公司：完成融资"))
    assert [f.code for f in log.findings] == ["warmup-missing-bullet"]


def test_items_keep_their_body_lines_and_back_issues_are_dropped():
    result, _ = scan(ISSUE)
    assert [s.name for s in result.sections] == ["论文"]
    (item,) = result.sections[0].items
    assert item.line == 16
    assert item.head == "[A](https://a.org)"
    assert [no for no, _ in item.body] == [17, 18, 19, 20]
    assert item.body[1][1] == "  缩进的续行"


def test_text_before_the_first_item_is_the_sections_prose():
    result, log = scan("# 简报 (2026-03-01)：x\n## 论文\n说明文字\n\n- [A](https://a.org)\n")
    (section,) = result.sections
    assert [(p.line, p.lines) for p in section.prose] == [(3, ["说明文字"])]
    assert [item.head for item in section.items] == ["[A](https://a.org)"]
    assert log.findings == []


def test_bad_bytes_and_control_characters_are_noted_with_their_line():
    result, log = scan(b"\xef\xbb\xbf# t (2026-03-01)\n\n## a\x07\n- [x](https://x.org) \xff\n")
    assert [(f.line, f.code) for f in log.findings] == [(4, "not-utf8"), (3, "control-character")]
    assert result.sections[0].name == "a"
    assert "\ufffd" in result.sections[0].items[0].head


def test_empty_file_and_unclosed_front_matter():
    empty, log = scan("  \n")
    assert empty.empty and log.has("empty-file")
    unclosed, log = scan("---\ntitle: x\n# t\n")
    assert unclosed.front == {}
    assert log.has("bad-front-matter")
    assert unclosed.title == (3, "t")


def test_clean_heading_drops_bold_links_and_colons():
    assert clean_heading("**论文：**") == "论文"
    assert clean_heading("[往期回顾](https://x.org)") == "往期回顾"
