"""The email digest: structure of the HTML, the text part, variants and the size budget."""

from __future__ import annotations

import dataclasses
import re

import pytest
from lxml import html as lxml_html

from digest.errors import TemplateError
from digest.feeds.entries import permalink
from digest.mail.render import DigestRenderer, render_subject
from digest.newsletter.parse import parse_issue

FIELDS = {
    "name": "读者",
    "email": "reader@example.com",
    "unsubscribe_url": "https://news.example.org/u?token=abc&x=<1>",
    "preferences_url": "https://news.example.org/p?token=def",
}


def renderer_for(site, stem="2026-11-01", **email):
    site.copy_examples()
    config = site.config
    if email:
        config = dataclasses.replace(config, email=dataclasses.replace(config.email, **email))
    issue = next(i for i in site.parsed() if i.stem == stem)
    return DigestRenderer(issue, config, permalink(config, issue), "https://news.example.org/feeds/"), issue


def test_html_structure(site):
    renderer, issue = renderer_for(site)
    html, text = renderer.variant().personalise(FIELDS)
    doc = lxml_html.fromstring(html)
    assert doc.get("lang") == "zh-CN"
    assert doc.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert re.search(r"prefers-color-scheme:\s*dark", html)
    assert "PingFang SC" in html and "Microsoft YaHei" in html
    assert not doc.xpath("//img") and "<script" not in html
    assert doc.xpath("string(//title)") == renderer.subject
    headings = [" ".join(h.text_content().split()) for h in doc.xpath("//h2")]
    # the warm-up heading in the issue's own words: the line leading into its bullets
    assert headings == ["好了，先是一些热身小新闻ヽ(✿゜▽゜)ノ", *[s.name for s in issue.sections]]
    hrefs = doc.xpath("//a/@href")
    for item in issue.items:
        assert item.href in hrefs, item.title
    # footer: view online, feeds, why, and a visible unsubscribe link
    assert permalink(site.config, issue) in hrefs
    assert "https://news.example.org/feeds/" in hrefs
    assert FIELDS["unsubscribe_url"] in hrefs  # escaped in the HTML, intact once parsed
    assert "&lt;1&gt;" in html
    unsubscribe = doc.xpath(f"//a[@href='{FIELDS['unsubscribe_url']}']")[0]
    assert unsubscribe.text_content() == "退订"
    assert "reader@example.com 订阅了" in doc.text_content()
    assert "%%DIGEST" not in html and "%%DIGEST" not in text
    preheader = doc.xpath("//div[contains(@style, 'display:none')]")[0].text_content()
    assert preheader.startswith("本次14条")


def test_outlook_conditionals_survive_minifying(site):
    renderer, _ = renderer_for(site)
    html, _ = renderer.variant().personalise(FIELDS)
    assert "<!--[if mso" in html
    assert "\n\n" not in html


def test_text_part_has_every_item_title_and_url(site):
    renderer, issue = renderer_for(site)
    _, text = renderer.variant().personalise(FIELDS)
    for item in issue.items:
        assert item.title in text
        assert item.href in text
    assert FIELDS["unsubscribe_url"] in text  # raw, not escaped, in plain text
    assert issue.warmup[0][:10] in text


def test_1000_personalised_renders_compile_mjml_once_per_variant(site, monkeypatch):
    import mjml

    calls = []
    real = mjml.mjml2html

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(mjml, "mjml2html", spy)
    renderer, _ = renderer_for(site)
    variants = [None, frozenset({"papers"}), frozenset({"papers", "blogs"}), frozenset({"blogs", "papers"})]
    outputs = set()
    for n in range(1000):
        digest = renderer.variant(variants[n % len(variants)])
        html, _ = digest.personalise({**FIELDS, "email": f"r{n}@example.com"})
        assert f"r{n}@example.com" in html
        outputs.add(digest.sections)
    assert len(calls) == 3 == renderer.compiles
    assert outputs == {("news", "papers", "projects", "blogs"), ("papers",), ("papers", "blogs")}


def test_a_variant_without_items_is_none(site):
    renderer, _ = renderer_for(site)
    assert renderer.variant(frozenset({"apps"})) is None
    assert renderer.variant(frozenset()) is renderer.variant(None)


def test_over_budget_summaries_are_shortened_with_a_link_to_the_issue(site):
    long_summary = "端侧推理优化。" * 300  # 2,100 characters, 6 KB of UTF-8
    items = "".join(f"- [条目{n} | 来源](https://a.org/{n})\n摘要：{long_summary}\n" for n in range(30))
    issue = parse_issue(f"# 简报 (2026-11-20)：大\n## 论文\n{items}", site.issues / "2026-11-20.md")
    renderer = DigestRenderer(issue, site.config, "https://news.example.org/2026-11-20.html", "https://n/f/")
    digest = renderer.variant()
    html, text = digest.personalise(FIELDS)
    assert digest.shortened and digest.summary_limit and digest.summary_limit > 0
    assert len(html.encode()) <= site.config.email.max_html_bytes < 102 * 1024
    assert html.count("阅读全文") == 30
    assert "部分摘要已缩短" in html and "部分摘要已缩短" in text
    for item in issue.items:  # titles and links are never cut
        assert item.href in html and item.href in text and item.title in text


def test_the_last_resort_drops_summaries_but_keeps_every_link(site):
    renderer, issue = renderer_for(site, max_html_bytes=15_000)
    digest = renderer.variant()
    html, text = digest.personalise(FIELDS)
    assert digest.summary_limit == 0
    for item in issue.items:
        assert item.href in html and item.href in text


def test_subject_template_and_default(site):
    renderer, issue = renderer_for(site)
    assert renderer.subject == issue.full_title
    config = dataclasses.replace(
        site.config,
        email=dataclasses.replace(site.config.email, subject="{{ site.title }} | {{ issue.headline }}"),
    )
    assert render_subject(issue, config) == f"简报 | {issue.headline}"
    broken = dataclasses.replace(config, email=dataclasses.replace(config.email, subject="{{ issue.nope }"))
    with pytest.raises(TemplateError, match="subject"):
        render_subject(issue, broken)


def test_newsletter_templates_override_the_builtin_ones(site, tmp_path):
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "digest.txt.j2").write_text(
        "CUSTOM {{ issue.title }} {{ fields.unsubscribe_url }}\n", encoding="utf-8"
    )
    renderer, issue = renderer_for(site, templates=custom)
    _, text = renderer.variant().personalise(FIELDS)
    assert text == f"CUSTOM {issue.title} {FIELDS['unsubscribe_url']}\n"


def test_hostile_issue_renders_safely(site):
    issue = parse_issue(
        "# 简报 (2026-11-20)：<b>x</b>\n> 导读：<script>alert(1)</script>\n## 论文\n"
        '- [t"><script>1</script> | s](https://a.org/?q="x")\n摘要：<img src=x onerror=alert(1)>ok\n',
        site.issues / "2026-11-20.md",
    )
    renderer = DigestRenderer(issue, site.config, "https://n/x", "https://n/f/")
    html, _ = renderer.variant().personalise(FIELDS)
    doc = lxml_html.fromstring(html)
    assert not doc.xpath("//script") and "onerror" not in html
    assert not doc.xpath("//body//b")
    assert "https://a.org/?q=%22x%22" in doc.xpath("//a/@href") or 'https://a.org/?q="x"' in doc.xpath(
        "//a/@href"
    )


def test_no_remote_resources_and_no_markup_in_the_text_part(site):
    renderer, _ = renderer_for(site)
    html, text = renderer.variant().personalise(FIELDS)
    assert "fonts.googleapis" not in html and "@import" not in html
    assert not lxml_html.fromstring(html).xpath("//link[@href] | //img | //script[@src]")
    assert "<a " not in text and "</" not in text
    assert "公开了M系列NPU的完整指令集手册与模拟器 (https://example.com/mosuan/npu-isa-release)" in text


def test_relative_links_are_made_absolute_in_the_email(site):
    text = "# 简报 (2026-11-20)：x\n## 论文\n- [相对 | 源](../2026-11-01.html) [[代码]](code/repo)\n"
    issue = parse_issue(text + "摘要：见 [上期](./prev.html)。\n", site.issues / "2026-11-20.md")
    renderer = DigestRenderer(
        issue, site.config, "https://news.example.org/issues/2026-11-20.html", "https://n/f/"
    )
    html, text = renderer.variant().personalise(FIELDS)
    hrefs = lxml_html.fromstring(html).xpath("//a/@href")
    assert "https://news.example.org/2026-11-01.html" in hrefs
    assert "https://news.example.org/issues/code/repo" in hrefs
    assert "https://news.example.org/issues/prev.html" in hrefs
    assert "https://news.example.org/2026-11-01.html" in text
    assert "上期 (https://news.example.org/issues/prev.html)" in text
