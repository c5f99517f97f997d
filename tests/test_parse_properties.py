"""Property tests: the parser never crashes, and never loses a linked item."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.errors import ParseError
from digest.newsletter.lint import read_links
from digest.newsletter.model import Severity
from digest.newsletter.parse import UndatedIssue, parse_issue

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

markdownish = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            ["---", "# 简报 (2024-01-01)：x", "## 论文", "## ", "- [", "- [a](", "](", "摘要：",
             "> 导读：", "    1. x", "- 三星：", "[x]()", "```", "<font>", "\r", "\ufeff", "\x00",
             "## [往期回顾](x)", "Editor: y", "代码：https://a.org", "（https://a.org）"]
        ),
    ),
    max_size=40,
).map("\n".join)  # fmt: skip


@SETTINGS
@given(markdownish)
def test_any_text_in_a_dated_file_parses(text):
    issue = parse_issue(text, Path("2024-01-01.md"))
    assert issue.date.isoformat() == "2024-01-01"


@SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_give_an_issue_or_an_undated_error(data):
    try:
        parse_issue(data, Path("notes.md"))
    except UndatedIssue as exc:
        error: ParseError = exc
    else:
        return
    assert any(f.code == "no-date" for f in error.findings)


title_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="[]\\`"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")
urls = st.from_regex(r"https://[a-z]{1,10}\.(com|org|cn)(/[A-Za-z0-9_\-.~/?=&%#]{0,30})?", fullmatch=True)
prose = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60).filter(
    lambda s: (
        not re.match(
            r"^\s*([-*+#]|_{3,}|`{3,}|~{3,}|(editor|project|wechat id|license)\s*[:：]|!\[wechat|<a rel)",
            s,
            re.I,
        )
    )
)
item = st.tuples(title_text, urls, st.lists(prose, max_size=3))
sections = st.lists(
    st.tuples(
        st.sampled_from(["业界新闻", "论文", "开源项目", "博文", "应用", "观点"]), st.lists(item, max_size=4)
    ),
    min_size=1,
    max_size=4,
)


@SETTINGS
@given(sections)
def test_every_top_level_link_bullet_yields_exactly_one_item(spec):
    lines = ["# 简报 (2024-01-01)：x", ""]
    for name, items in spec:
        lines.append(f"## {name}")
        for title, url, summary in items:
            lines.append(f"- [{title}]({url})  ")
            lines.extend(["摘要：" + summary[0], *summary[1:]] if summary else [])
    issue = parse_issue("\n".join(lines), Path("x.md"))
    assert [s.name for s in issue.sections] == [name for name, _ in spec]
    for section, (_, items) in zip(issue.sections, spec, strict=True):
        assert [i.url for i in section.items] == [url for _, url, _ in items]


hidden_line = st.one_of(
    st.text(alphabet="abcxyz 甲乙", min_size=1, max_size=10).map(lambda t: f"- [{t}](https://hidden.example/{t})"),
    st.sampled_from(["## hidden heading", "1、[h](https://hidden.example/n)", "- [x](https://hidden.example/b)",
                     "代码：https://hidden.example/c", "    - [i](https://hidden.example/i)", ""]),
)  # fmt: skip
wrapper = st.sampled_from([("<!--", "-->"), ("```", "```"), ("~~~", "~~~"), ("<!-- note", "end -->")])
visible = st.tuples(title_text, urls).map(lambda t: f"- [{t[0]}]({t[1]})")


@SETTINGS
@given(
    st.lists(st.tuples(st.lists(visible, max_size=3), wrapper, st.lists(hidden_line, max_size=5)), max_size=4)
)
def test_nothing_inside_a_comment_or_a_code_fence_becomes_an_item(blocks):
    lines = ["# 简报 (2024-01-01)：x", "", "## 论文", ""]
    expected = []
    for shown, (opener, closer), hidden in blocks:
        lines += [*shown, "", opener, *hidden, closer, ""]
        expected += [re.search(r"\]\((.*)\)$", line).group(1) for line in shown]
    issue = parse_issue("\n".join(lines), Path("x.md"))
    assert [s.name for s in issue.sections] == ["论文"]
    assert [i.url for i in issue.items] == expected
    assert not any("hidden.example" in link.url for i in issue.items for link in i.links)
    assert all("hidden" not in s.name for s in issue.sections)


word = st.sampled_from(
    ["alpha", "beta", "Grin", "新闻", "ニュース", "vie", "12", "C++", "**bold**", "`code`"]
)
words = st.lists(word, min_size=1, max_size=4).map(" ".join)
link = st.tuples(words, st.integers(0, 999)).map(lambda t: f"[{t[0]}](https://l.example/{t[1]})")
inline = st.lists(
    st.one_of(words, link, st.integers(0, 999).map(lambda n: f"https://bare.example/{n}")),
    min_size=1,
    max_size=4,
).map(" ".join)
block = st.one_of(
    st.tuples(st.integers(1, 4), st.one_of(words, link)).map(lambda t: "#" * t[0] + " " + t[1]),
    st.lists(
        st.tuples(st.sampled_from(["- ", "* ", "1. ", "- **Tag:** ", "- [tag] "]), inline),
        min_size=1,
        max_size=3,
    ).map(lambda rows: "\n".join(a + b for a, b in rows)),
    st.lists(inline, min_size=1, max_size=3).map("\n".join),  # a paragraph, wrapped
    inline.map(lambda t: "> " + t),
    st.tuples(st.integers(1, 9), inline).map(lambda t: f"{t[0]}、{t[1]}"),
    st.tuples(st.integers(1, 9), link).map(lambda t: f"{t[0]}、\n\n> quoted words\n\n——{t[1]}"),
    inline.map(lambda t: "    " + t),  # indented: code at the top level, text in a list
    st.tuples(link, inline).map(lambda t: f"- {t[0]}\n    - {t[1]}\n        - {t[1]}"),  # nested lists
    st.tuples(words, st.integers(0, 9)).map(lambda t: f"- **[{t[0]} [{t[1]}]](https://b.example/{t[1]})** x"),
    st.integers(0, 9).map(lambda n: f'<div><a href="https://html.example/{n}">x</a></div>'),
    st.tuples(inline, inline).map(lambda t: f"| a | b |\n|---|---|\n| {t[0]} | {t[1]} |"),
    st.integers(0, 9).map(lambda n: f"- [ref {n}][r{n}] and [r{n}]\n\n[r{n}]: https://ref.example/{n}"),
)
documents = st.tuples(st.booleans(), st.lists(block, min_size=1, max_size=12)).map(
    lambda t: ("---\ntitle: Weekly\n---\n\n" if t[0] else "") + "\n\n".join(t[1]) + "\n"
)


@SETTINGS
@given(documents)
def test_no_link_of_any_document_is_lost_on_the_way_to_the_mail(text):
    """Whatever the headings' levels and the blocks' shapes, every link is in an item or in prose."""
    issue = parse_issue(text, Path("2024-01-01.md"))
    reading = read_links(text, issue)
    assert reading.missing == () and reading.left_out == ()
    assert not [f for f in issue.findings if f.severity is Severity.ERROR]
