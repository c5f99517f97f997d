"""The parser, one test per quirk found in the real issues and drafts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import TEST_SECTIONS
from digest.newsletter import parse as _parse
from digest.newsletter.model import Severity
from digest.newsletter.parse import ParseOptions, UndatedIssue, derive_slug, read_issue

# The test newsletter's own section names: digest knows none of its own.
SECTIONS = ParseOptions(section_slugs=TEST_SECTIONS)


def parse_issue(data, path, options=None):
    return _parse.parse_issue(data, path, options or SECTIONS)


P = Path("2024-03-01.md")


def codes(issue_or_findings) -> set[str]:
    findings = getattr(issue_or_findings, "findings", issue_or_findings)
    return {f.code for f in findings}


def finding(issue, code):
    return next(f for f in issue.findings if f.code == code)


def body(*lines: str) -> str:
    return "\n".join(["# 简报 (2024-03-01)：标题", "", *lines, ""])


def test_clean_issue_reads_every_part(issue_text):
    issue = parse_issue(issue_text, P)
    assert issue.date == dt.date(2024, 3, 1)
    assert issue.title == "简报 (2024-03-01)"
    assert issue.headline == "芯片/编译器"
    assert issue.full_title == "简报 (2024-03-01)：芯片/编译器"
    assert issue.tagline == "关注模型压缩、部署"
    assert issue.intro == "本期三条。"
    assert issue.warmup == ("甲公司：发布新芯片；", "乙公司：完成融资。")
    assert [s.name for s in issue.sections] == ["业界新闻", "论文"]
    assert [s.slug for s in issue.sections] == ["news", "papers"]
    news, paper = issue.items
    assert (news.title, news.source, news.url) == ("新芯片发布", "某媒体", "https://example.com/a")
    assert news.summary == "第一行。\n第二行。"
    assert "第一行。<br>" in news.summary_html
    assert paper.labels == ("2403.00001",)
    assert paper.title == "A Paper" and paper.source == ""
    assert [(link.label, link.url) for link in paper.links] == [("代码", "https://github.com/x/y")]
    assert issue.findings == ()


def test_front_matter_is_optional(issue_text):
    without = issue_text.split("---\n", 2)[2]

    def content(issue):
        return [(i.title, i.url, i.summary, i.links) for i in issue.items]

    assert content(parse_issue(without, P)) == content(parse_issue(issue_text, P))


def test_front_matter_draft_flags():
    assert parse_issue("---\ndraft: true\n---\n" + body("## 论文", "- [a](https://a.org)"), P).draft
    assert parse_issue("---\npublished: false\n---\n" + body("## 论文", "- [a](https://a.org)"), P).draft
    assert not parse_issue(body("## 论文", "- [a](https://a.org)"), P).draft


def test_h1_with_many_hashes_is_the_title():
    issue = parse_issue("############### 简报 (2020-06-03)\n\n## 论文\n- [a](https://a.org)\n", Path("x.md"))
    assert issue.title == "简报 (2020-06-03)"
    assert issue.date == dt.date(2020, 6, 3)


def test_headline_after_space_without_colon():
    issue = parse_issue("# 简报 (2020-11-30) 华为Bolt/NanoDet\n## 论文\n- [a](https://a.org)\n", P)
    assert issue.headline == "华为Bolt/NanoDet"


def test_placeholder_title_is_fatal():
    issue = parse_issue("# 简报 (2021-01-05) <标题><标题><标题>\n## 论文\n- [a](https://a.org)\n", P)
    assert finding(issue, "placeholder-title").severity is Severity.FATAL


def test_headings_with_trailing_spaces_and_fullwidth_colon():
    issue = parse_issue(
        body("## 业界新闻   ", "- [a](https://a.org)", "## 博文：", "- [b](https://b.org)"), P
    )
    assert [(s.name, s.slug) for s in issue.sections] == [("业界新闻", "news"), ("博文", "blogs")]


def test_empty_section_is_kept_with_a_warning():
    issue = parse_issue(body("## 论文", "", "## 博文", "- [b](https://b.org)"), P)
    assert [s.name for s in issue.sections] == ["论文", "博文"]
    assert finding(issue, "empty-section").severity is Severity.WARNING


def slug_in_a_new_process(name: str, hash_seed: str) -> str:
    """The slug another run of digest derives (a feed's URL must not change between runs)."""
    code = (
        "import sys; from digest.newsletter.parse import derive_slug; print(derive_slug(sys.argv[1], {})[0])"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", code, name], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def test_unknown_sections_are_kept_with_a_derived_slug():
    issue = parse_issue(
        body(
            "## 应用",
            "- [a](https://a.org)",
            "## 观点",
            "- [b](https://b.org)",
            "## Tools & Tips",
            "- [c](https://c.org)",
        ),
        P,
    )
    assert [s.slug for s in issue.sections] == ["apps", derive_slug("观点", {})[0], "tools-tips"]
    assert derive_slug("观点", {})[0] == "guan-dian"  # transliterated: readable, and a valid feed slug
    assert derive_slug("\u200b", {})[0].startswith("section-")  # nothing to transliterate: a hash
    assert {slug_in_a_new_process("观点", seed) for seed in ("1", "2")} == {derive_slug("观点", {})[0]}
    assert sum(f.code == "unknown-section" for f in issue.findings) == 2


def test_configured_slugs_override_defaults():
    options = ParseOptions(section_slugs={"观点": "opinions"})
    issue = parse_issue(body("## 观点", "- [a](https://a.org)"), P, options)
    assert issue.sections[0].slug == "opinions"
    assert "unknown-section" not in codes(issue)


def test_item_without_summary():
    summarised = "- [a](https://a.org)\n摘要：有摘要。"
    issue = parse_issue(
        body("## 开源项目", summarised, "- [org/repo: a tool](https://github.com/org/repo)  "), P
    )
    item = issue.items[1]
    assert item.summary == "" and item.summary_html == ""
    assert finding(issue, "no-summary").severity is Severity.WARNING
    bare = parse_issue(body("## 开源项目", "- [a](https://a.org)", "- [b](https://b.org)"), P)
    assert "no-summary" not in {f.code for f in bare.findings}  # a list of bare links is the style


def test_empty_link_target_is_an_error_and_the_item_is_kept():
    issue = parse_issue(
        body(
            "## 论文",
            "- [FlashAttention | 机器之心]()  ",
            "论文：https://arxiv.org/pdf/2205.14135.pdf",
            "摘要：快。",
        ),
        P,
    )
    (item,) = issue.items
    assert (item.title, item.source, item.url) == ("FlashAttention", "机器之心", "")
    assert item.href == "https://arxiv.org/pdf/2205.14135.pdf"
    assert finding(issue, "empty-link-target").severity is Severity.ERROR


def test_bare_url_as_link_text_with_empty_target():
    issue = parse_issue(body("## 开源项目", "- [https://github.com/a/b]()  ", "摘要：例子。"), P)
    assert issue.items[0].url == "https://github.com/a/b"
    assert finding(issue, "url-from-title").severity is Severity.WARNING


def test_unclosed_link_running_onto_next_lines():
    issue = parse_issue(
        body(
            "## 业界新闻",
            "- [在设备上实现实时检测 | ",
            " ",
            "3D目标检测是一项重要任务。",
            "",
            "## 论文",
            "- [b](https://b.org)",
        ),
        P,
    )
    first = issue.sections[0].items[0]
    assert first.title == "在设备上实现实时检测" and first.url == ""
    assert first.summary == "3D目标检测是一项重要任务。"
    assert finding(issue, "unclosed-link").severity is Severity.ERROR
    assert issue.sections[1].items[0].url == "https://b.org"


def test_link_title_continued_on_the_next_line_is_joined():
    issue = parse_issue(
        body("## 博文", "- [很长的标题前半，", "后半 | 某技术](https://example.com/x)  ", "摘要：好。"), P
    )
    (item,) = issue.items
    assert (item.title, item.source, item.url) == ("很长的标题前半， 后半", "某技术", "https://example.com/x")
    assert item.summary == "好。"
    assert not any(f.severity is Severity.ERROR for f in issue.findings)


def test_fullwidth_paren_glued_to_a_url():
    issue = parse_issue(
        body(
            "## 论文",
            "- [a | b](https://github.com/x/y#halo）。  ",
            "摘要：见（https://example.org/r），欢迎。",
        ),
        P,
    )
    (item,) = issue.items
    assert item.url == "https://github.com/x/y#halo"
    assert 'href="https://example.org/r"' in item.summary_html
    assert "fullwidth-paren" in codes(issue)


def test_nested_lists_belong_to_the_summary_not_to_the_items():
    issue = parse_issue(
        body(
            "## 博文",
            "- [T | S](https://t.org)  ",
            "摘要：两点：",
            "    1. 第一点；",
            "    2. 第二点：",
            "        2.1 细节甲；",
            "        2.2 细节乙。",
            "总结一句。",
            "  - 子弹一",
            "- [U | S](https://u.org)",
        ),
        P,
    )
    first, second = issue.items
    assert second.url == "https://u.org"
    html = first.summary_html
    assert html.count("<ol>") == 1 and html.count("<ul>") == 2
    assert "<li>2.1 细节甲；</li>" in html
    assert "<p>总结一句。</p>" in html
    assert "子弹一" in html


def test_continuation_lines_and_blank_line_before_summary():
    issue = parse_issue(
        body("## 业界新闻", "- [A | S](https://a.org)  ", "", "摘要：一。  ", "二。", "", "三。"), P
    )
    assert issue.items[0].summary == "一。\n二。\n\n三。"


def test_labelled_lines_become_links_or_fields():
    issue = parse_issue(
        body(
            "## 论文",
            "- [ISMAR 2020] [手机端三维重建 | 公开课](https://mp.example.com/s/1)  ",
            "标题：Mobile3DRecon: Real-time Monocular 3D Reconstruction  ",
            "文章：https://ieeexplore.example.com/document/1  ",
            "链接：https://arxiv.org/abs/1 、 https://openreview.net/forum?id=2  ",
            "项目地址：www.opencv.org",
            "摘要：系统。",
            "代码：https://github.com/after/summary",
            "更多介绍：https://example.org/more",
        ),
        P,
    )
    (item,) = issue.items
    assert item.labels == ("ISMAR 2020",)
    assert [(f.label, f.text) for f in item.fields] == [
        ("标题", "Mobile3DRecon: Real-time Monocular 3D Reconstruction")
    ]
    assert [(link.label, link.url) for link in item.links] == [
        ("文章", "https://ieeexplore.example.com/document/1"),
        ("链接", "https://arxiv.org/abs/1"),
        ("链接", "https://openreview.net/forum?id=2"),
        ("项目地址", "http://www.opencv.org"),
        ("代码", "https://github.com/after/summary"),  # a known link label, even after 摘要
    ]
    assert item.summary == "系统。\n更多介绍：https://example.org/more"  # prose stays prose


def test_labels_glued_together_and_extra_links_on_the_title_line():
    issue = parse_issue(
        body(
            "## 论文",
            "- [CVPR2021][2104.11487] [Skip-Conv](https://a.org/1) [[报道原文]](https://b.org) [解读](https://c.org)",
        ),
        P,
    )
    (item,) = issue.items
    assert item.labels == ("CVPR2021", "2104.11487")
    assert item.url == "https://a.org/1"
    assert [(link.label, link.url) for link in item.links] == [
        ("报道原文", "https://b.org"),
        ("解读", "https://c.org"),
    ]


def test_source_after_the_last_bar():
    issue = parse_issue(
        body(
            "## 论文",
            "- [KDD 2019 | 特征组合 | 机器之心](https://a.org)",
            "- [CPU编程（上）| InfoQ](https://b.org)",
            "- [a|b](https://c.org)",
        ),
        P,
    )
    assert [(i.title, i.source) for i in issue.items] == [
        ("KDD 2019 | 特征组合", "机器之心"),
        ("CPU编程（上）", "InfoQ"),
        ("a|b", ""),
    ]


def test_item_without_any_link_keeps_title_and_source():
    issue = parse_issue(body("## 业界新闻", "- iPhone 12将采用A14处理器 | IT之家  ", "摘要：消息。"), P)
    (item,) = issue.items
    assert (item.title, item.source, item.url) == ("iPhone 12将采用A14处理器", "IT之家", "")
    assert "no-link" in codes(issue)


def test_crlf_and_bom(issue_text):
    plain = parse_issue(issue_text, P)
    crlf = parse_issue(b"\xef\xbb\xbf" + issue_text.replace("\n", "\r\n").encode(), P)
    assert crlf.items == plain.items
    assert crlf.findings == plain.findings
    assert crlf.intro == plain.intro


@pytest.mark.parametrize("data", [b"", b"\n", b" "])
def test_empty_and_one_byte_files_are_fatal_not_crashes(data):
    with pytest.raises(UndatedIssue) as caught:
        parse_issue(data, Path("draft.md"))
    assert {"empty-file", "no-date"} <= codes(caught.value.findings)
    assert all(f.severity is Severity.FATAL for f in caught.value.findings)


def test_file_of_only_front_matter():
    issue = parse_issue(b"---\nlayout: default\n---\n", P)
    assert issue.sections == ()
    assert finding(issue, "no-items").severity is Severity.FATAL


def test_non_utf8_bytes_are_replaced_and_reported_at_their_line(issue_text):
    data = issue_text.encode().replace("发布新芯片".encode(), "发布".encode() + b"\xff\xfe")
    issue = parse_issue(data, P)
    bad = finding(issue, "not-utf8")
    assert bad.severity is Severity.ERROR
    assert bad.line == issue_text.splitlines().index("- 甲公司：发布新芯片；") + 1
    assert "\ufffd" in issue.warmup[0]


def test_gbk_file_does_not_crash():
    data = body("## 论文", "- [论文 | 来源](https://a.org)", "摘要：中文。").encode("gbk")
    issue = parse_issue(data, Path("x.md"))
    assert finding(issue, "not-utf8").line == 1
    assert issue.date == dt.date(2024, 3, 1)
    assert issue.items[0].url == "https://a.org"


def test_boilerplate_is_dropped():
    issue = parse_issue(
        body(
            "<font>注：PC端微信链接打不开请用手机打开</font>",
            "## 论文",
            "- [a](https://a.org)",
            "## [往期回顾](https://github.com/x/y)",
            "| 2 | 0 |",
            "| [2024-02-01](../r/2024-02-01.md) | |",
            "- [2024-01-01](https://github.com/x/y/2024-01-01.md)",
            "----",
            "![wechat_qrcode](../wechat_qrcode.jpg)",
            "Wechat ID: NeuroMem  ",
            "Editor: https://github.com/someone  ",
            '<a rel="license" href="http://creativecommons.org/licenses/by-sa/4.0/"><img src="x.png" /></a>',
        ),
        P,
    )
    assert [s.name for s in issue.sections] == ["论文"]
    assert len(issue.items) == 1
    assert not any("往期" in n or "Editor" in n or "font" in n for n in issue.notes)


def test_footer_without_back_issues_ends_the_last_item():
    issue = parse_issue(
        body(
            "## 博文",
            "- [a](https://a.org)",
            "摘要：x。",
            "",
            "----",
            "",
            "Editor: https://github.com/e  ",
            "Project: https://github.com/p",
        ),
        P,
    )
    assert issue.items[0].summary == "x。"


def test_html_in_summaries_is_sanitised():
    issue = parse_issue(
        body(
            "## 博文",
            "- [a](https://a.org)",
            '摘要：<script>alert(1)</script><b onclick="x()">粗</b>',
            '<a href="javascript:alert(1)">坏</a> <img src=x onerror=y>',
            "![图](https://img.example.com/p.png)",
        ),
        P,
    )
    html = issue.items[0].summary_html
    assert "<script" not in html and "alert(1)</" not in html
    assert "onclick" not in html and "onerror" not in html
    assert "javascript:" not in html
    assert "<img" not in html
    assert "<b>粗</b>" in html
    assert 'href="https://img.example.com/p.png"' in html


def test_unsafe_item_url_is_dropped_with_an_error():
    issue = parse_issue(body("## 论文", "- [x](javascript:alert(1))"), P)
    assert issue.items[0].url == ""
    assert finding(issue, "unsafe-url").severity is Severity.ERROR


def test_empty_warmup_entry_is_an_error():
    issue = parse_issue(body("- 三星：", "- 高通：发布新品。", "- ", "## 论文", "- [a](https://a.org)"), P)
    assert issue.warmup == ("高通：发布新品。",)
    assert sum(f.code == "empty-warmup-entry" for f in issue.findings) == 2


def test_warmup_line_without_bullet_becomes_its_own_entry():
    issue = parse_issue(body("- 甲：一；", "乙：二；", "- 丙：三。", "## 论文", "- [a](https://a.org)"), P)
    assert issue.warmup == ("甲：一；", "乙：二；", "丙：三。")
    assert "warmup-missing-bullet" in codes(issue)


def test_duplicate_url_in_one_issue_is_a_warning():
    issue = parse_issue(body("## 论文", "- [a](https://a.org)", "## 博文", "- [b](https://a.org)"), P)
    dup = finding(issue, "duplicate-url")
    assert dup.severity is Severity.WARNING and "line" in dup.message


# -- dates -------------------------------------------------------------------------------------


def section_body() -> str:
    return "## 论文\n- [a](https://a.org)\n"


def test_date_from_front_matter_wins_and_a_far_mismatch_is_a_warning():
    issue = parse_issue(
        "---\ndate: 2024-03-02\n---\n# 简报 (2024-03-20)\n" + section_body(), Path("2024-03-03-x.md")
    )
    assert issue.date == dt.date(2024, 3, 2)
    (mismatch,) = [f for f in issue.findings if f.code == "date-mismatch"]
    assert mismatch.severity is Severity.WARNING and "2024-03-20" in mismatch.message


def test_date_from_front_matter_then_filename():
    fm = parse_issue("---\ndate: 2024-05-06 08:30:00 +0800\n---\n# 简报\n" + section_body(), Path("notes.md"))
    assert fm.date == dt.date(2024, 5, 6)
    assert fm.published.utcoffset() == dt.timedelta(hours=8) and fm.published.hour == 8
    named = parse_issue("# 简报\n" + section_body(), Path("2024-07-08-weekly.md"))
    assert named.date == dt.date(2024, 7, 8)


def test_filename_with_placeholder_date_is_fine_when_the_title_has_one():
    issue = parse_issue("# 简报 (2020-05-15)\n" + section_body(), Path("2020-05-xx.md"))
    assert issue.date == dt.date(2020, 5, 15)
    assert "date-mismatch" not in codes(issue)


@pytest.mark.parametrize(
    "spelling", ["2024.3.1", "2024/03/01", "2024年3月1日", "March 1, 2024", "1 Mar 2024"]
)
def test_other_date_spellings(spelling):
    issue = parse_issue(f"# 简报 ({spelling})\n" + section_body(), Path("x.md"))
    assert issue.date == dt.date(2024, 3, 1)


def test_no_date_anywhere_is_an_error_for_that_file():
    with pytest.raises(UndatedIssue) as caught:
        parse_issue("# 简报\n" + section_body(), Path("notes.md"))
    assert "no date" in str(caught.value) and "notes.md" in str(caught.value)


def test_published_is_midnight_in_the_configured_timezone():
    tz = ZoneInfo("Asia/Shanghai")
    issue = parse_issue("# 简报 (2024-03-01)\n" + section_body(), P, ParseOptions(timezone=tz))
    assert issue.published == dt.datetime(2024, 3, 1, tzinfo=tz)
    assert issue.published.utcoffset() == dt.timedelta(hours=8)


def test_read_issue_names_the_file_when_it_cannot_be_read(tmp_path):
    from digest.errors import ParseError

    with pytest.raises(ParseError, match=r"missing\.md"):
        read_issue(tmp_path / "missing.md")
    with pytest.raises(ParseError, match="directory"):
        read_issue(tmp_path)


@pytest.mark.parametrize(
    "value", ["2026-02-30", "2026-13-01", "99999-01-01 00:00:00", "[1, 2", "!!python/object:os.system x"]
)
def test_impossible_front_matter_is_a_finding_not_a_crash(value):
    issue = parse_issue(
        f"---\ndate: {value}\n---\n# 简报 (2024-03-01)：x\n## 论文\n- [a](https://a.org)\n", P
    )
    assert issue.date == dt.date(2024, 3, 1)
    (found,) = [f for f in issue.findings if f.code in ("bad-front-matter", "bad-date")]
    assert found.severity is Severity.WARNING


def test_control_characters_are_removed_with_a_finding():
    issue = parse_issue("# 简报 (2024-03-01)：标\x01题\x7f\n## 论文\n- [a\x08b](https://a.org)\n", P)
    assert issue.headline == "标题"
    assert issue.items[0].title == "ab"
    assert finding(issue, "control-character").line == 1
