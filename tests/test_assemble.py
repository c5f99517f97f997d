"""Item and section assembly on its own: raw lines in, model items and findings out."""

from __future__ import annotations

from digest.config import DEFAULT_SECTION_SLUGS
from digest.newsletter.assemble import Assembler, derive_slug, normalize_summary, parse_head, split_source
from digest.newsletter.model import Link
from digest.newsletter.scan import FindingLog, RawItem, RawSection


def assemble(head: str, *body: str):
    log = FindingLog()
    raw = RawItem(line=5, head=head, body=[(6 + n, text) for n, text in enumerate(body)])
    item = Assembler(log, DEFAULT_SECTION_SLUGS).item(raw)
    return item, [(f.line, f.code) for f in log.findings]


def test_head_with_labels_source_and_extra_links():
    head = parse_head("[CVPR 2026] [A Paper | 机器之心](https://a.org/x) [[代码]](https://github.com/a/b) 尾")
    assert head.labels == ["CVPR 2026"]
    assert head.text == "A Paper | 机器之心"
    assert head.url == "https://a.org/x"
    assert head.extras == [Link("代码", "https://github.com/a/b")]
    assert head.tail == "尾"
    assert split_source(head.text) == ("A Paper", "机器之心")


def test_labelled_links_fields_and_summary():
    body = ["代码：https://c.org", "标题：中文题目", "摘要：第一行", "第二行"]
    item, findings = assemble("[T](https://t.org)", *body)
    assert [link.url for link in item.links] == ["https://c.org"]
    assert [(f.label, f.text) for f in item.fields] == [("标题", "中文题目")]
    assert item.summary == "第一行\n第二行"
    assert findings == []


def test_link_running_onto_the_next_line_is_joined():
    item, findings = assemble("[A long", "title](https://a.org)", "摘要：s")
    assert (item.title, item.url) == ("A long title", "https://a.org")
    assert findings == []  # joined once it closes: nothing left to fix


def test_repairs_are_findings():
    assert assemble("[https://u.org]()", "摘要：s")[1] == [(5, "url-from-title")]
    assert assemble("[t]()", "摘要：s")[1] == [(5, "empty-link-target")]
    assert assemble("[t](https://a.org）", "摘要：s")[1] == [(5, "fullwidth-paren")]
    unsafe, findings = assemble("[t](javascript:alert(1))", "摘要：s")
    assert unsafe.url == "" and findings == [(5, "unsafe-url")]


def test_sections_get_slugs_and_empty_ones_are_noted():
    log = FindingLog()
    assembler = Assembler(log, {"论文": "papers"})  # the newsletter's own names
    known = assembler.section(RawSection("论文", 3, [RawItem(4, "[t](https://t.org)")]))
    unknown = assembler.section(RawSection("Tools & Tips", 9))
    assert (known.slug, len(known.items)) == ("papers", 1)
    assert unknown.slug == "tools-tips" == derive_slug("Tools & Tips", {})[0]
    assert [(f.line, f.code) for f in log.findings] == [(9, "unknown-section"), (9, "empty-section")]


def test_summary_lists_are_reindented_into_real_markdown_lists():
    lines = ["要点：", "    1. 一", "        2.1 子点", "    2. 二"]
    assert normalize_summary(lines) == "要点：\n\n1. 一\n    - 2.1 子点\n2. 二"


def test_link_never_closed_is_an_error():
    item, findings = assemble("[A long", "", "摘要：s")
    assert item.url == ""
    assert findings == [(5, "unclosed-link")]
