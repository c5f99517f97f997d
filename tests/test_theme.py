"""[theme]: colours checked when the config loads, the masthead and footer it adds, blocks a newsletter
overrides from its own folder, and the archive it shares (contents, previous and next, search index)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import html as lxml_html

from conftest import EXAMPLES, ISSUE, NOW
from digest.config import contrast_ratio, load_config
from digest.errors import ConfigError
from digest.i18n import format_date
from digest.mail.render import DigestRenderer
from digest.newsletter.catalog import load_issue
from digest.pipeline import build_feeds_now

FIELDS = {"email": "reader@example.com", "unsubscribe_url": "https://x.example/u", "preferences_url": ""}


def themed(tmp_path: Path):
    """The themed example (and the issues it reads from its sibling) in a scratch copy."""
    for name in ("themed-weekly", "pelican-weekly"):
        shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns("var", "output"))
    return load_config(tmp_path / "themed-weekly" / "digest.toml")


def email(config, stem: str):
    renderer = DigestRenderer.for_issue(load_issue(config, stem), config)
    html, text = renderer.variant().personalise(FIELDS)
    return lxml_html.fromstring(html), html, text


@pytest.mark.parametrize(
    ("theme", "error"),
    [
        ('accent = "#ffcc00"', "'theme.accent' = #ffcc00 has contrast 1.5:1 on #ffffff; WCAG AA needs 4.5:1"),
        ('accent_dark = "#333"', "'theme.accent_dark' = #333333 has contrast 1.5:1 on #111317"),
        ('accent = "purple"', "'theme.accent' must be a colour such as \"#0b57d0\""),
        ('logo = "logo.png"', "'theme.logo' must be an http(s) URL"),
        ("logo_width = 2000", "'theme.logo_width' must be 16 to 600"),
        ('colour = "#000000"', "unknown key 'colour' in [theme]"),
        ('templates = "nowhere"', "'theme.templates' is not a folder"),
    ],
)
def test_a_theme_that_would_be_unreadable_is_a_one_line_config_error(site, theme, error):
    site.write_config(f"[theme]\n{theme}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(site.config_path)
    message = str(raised.value)
    assert error in message and "\n" not in message and str(site.config_path) in message


def test_contrast_is_the_wcag_ratio():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey


def test_the_theme_gives_the_email_its_masthead_and_footer(tmp_path):
    config = themed(tmp_path)
    doc, html, text = email(config, "tern-weekly-43")
    links = doc.xpath("//a")
    assert links[0].text_content() == "View online"  # the very first thing in the body
    assert links[0].get("href") == "https://example.org/tern-weekly/feeds/archive/tern-weekly-43.html"
    (logo,) = doc.xpath("//img")
    assert (logo.get("src"), logo.get("alt"), logo.get("width")) == (config.theme.logo, "Tern Weekly", "140")
    masthead = doc.xpath("//*[contains(@class, 'masthead')]")[0].text_content()
    issue = load_issue(config, "tern-weekly-43")
    assert issue.headline == "" and str(issue.number) in issue.title  # the heading says name and number
    assert masthead.strip() == format_date(issue.date, "en")  # ... so the line above it is the date alone
    body = doc.text_content()
    assert "12 Harbour Row, Bristol BS1 4XX, United Kingdom" in body
    assert config.theme.reason in body and "You are receiving this because" not in body
    assert "Reply to this email: it reaches the editors." in body  # the newsletter's own block
    assert "https://example.org/tern-weekly/feeds/archive/index.html" in doc.xpath("//a/@href")
    assert "rgb" not in html and "color:#7a2e8e" in html.replace(" ", "")  # the accent on links, inlined
    assert "12 Harbour Row" in text and config.theme.reason in text
    assert text.splitlines()[0] == f"Read online: {links[0].get('href')}"  # the text part starts so too


def test_a_newsletter_overrides_one_block_and_the_rest_follows_digest(site):
    site.copy_examples()
    plain, _, _ = email(site.config, "2026-11-01")
    own = site.root / "own"
    own.mkdir()
    (own / "digest.mjml.j2").write_text(
        '{% extends "digest/digest.mjml.j2" %}\n'
        '{% block item %}<p class="mine">{{ item.title }}</p>{% endblock %}\n',
        encoding="utf-8",
    )
    site.write_config(f'[theme]\ntemplates = "{own}"\n')
    site.copy_examples()
    mine, _, _ = email(site.config, "2026-11-01")
    issue = load_issue(site.config, "2026-11-01")
    assert [p.text_content() for p in mine.xpath("//p[@class='mine']")] == [i.title for i in issue.items]
    assert not mine.xpath("//*[@class='item']") and len(plain.xpath("//*[@class='item']")) == len(issue.items)
    for part in ("//h1", "//h2"):  # masthead, sections, footer: digest's
        assert [e.text_content() for e in mine.xpath(part)] == [e.text_content() for e in plain.xpath(part)]
    assert mine.xpath("//a[contains(@href, 'x.example/u')]")


def test_the_warm_up_lead_in_is_said_once(site):
    site.copy_examples()
    lead = "好了，先是一些热身小新闻"
    doc, _, text = email(site.config, "2026-11-01")
    assert doc.text_content().count(lead) == 1 and doc.xpath(f"//h2[contains(., '{lead}')]")
    assert text.count(lead) == 1
    build_feeds_now(site.config, NOW)
    page = (site.config.paths.feeds / "archive" / "2026-11-01.html").read_text(encoding="utf-8")
    assert page.count(lead) == 1


def test_the_archive_pages_link_issues_sections_and_search(tmp_path):
    config = themed(tmp_path)
    build_feeds_now(config, NOW)
    archive = config.paths.feeds / "archive"
    index = lxml_html.fromstring((archive / "index.html").read_text(encoding="utf-8"))
    issues = index.xpath("//ul[@class='issues'][1]/li/a/@href")
    assert len(issues) == 3
    for n, name in enumerate(issues):
        page = lxml_html.fromstring((archive / name).read_text(encoding="utf-8"))
        older = page.xpath("//a[@rel='prev']/@href")
        newer = page.xpath("//a[@rel='next']/@href")
        assert older == issues[n + 1 : n + 2] and newer == issues[max(n - 1, 0) : n]
        toc = page.xpath("//nav[@class='toc']//a/@href")
        assert toc and all(page.xpath(f"//h3[@id='{href[1:]}']") for href in toc)
        assert page.xpath("//footer//form[@method='post']/@action") == [f"{config.email.base_url}subscribe"]
        assert "12 Harbour Row" in page.xpath("string(//footer)")
        assert "written by volunteers" in page.xpath("string(//footer)")  # the newsletter's own block
    script = (archive / "search-index.js").read_text(encoding="utf-8")
    data = json.loads(script.removeprefix("window.digestSearchIndex = ").rstrip().rstrip(";"))
    titles = {item["title"] for issue in data for item in issue["items"]}
    read = [load_issue(config, Path(name).stem) for name in issues]
    assert titles == {item.title for issue in read for item in issue.items}
    assert [issue["url"] for issue in data] == issues


def test_the_feeds_index_wraps_whole_rows_and_has_no_table(tmp_path):
    config = themed(tmp_path)
    build_feeds_now(config, NOW)
    page = lxml_html.fromstring((config.paths.feeds / "index.html").read_text(encoding="utf-8"))
    assert not page.xpath("//table")
    rows = page.xpath("//ul[@class='feeds']/li")
    assert rows and all(row.xpath(".//a[contains(@href, 'atom.xml')]") for row in rows)


def test_the_search_script_is_plain_javascript(tmp_path):
    config = themed(tmp_path)
    build_feeds_now(config, NOW)
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = config.paths.feeds / "archive" / "search.js"
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or sys.executable


def test_sections_named_with_markup_characters_get_their_anchor_and_search_entry(site):
    name = 'Q&A <问答> "引号"'
    site.write_issue("2024-03-01.md", ISSUE.replace("## 论文", f"## {name}"))
    build_feeds_now(site.config, NOW)
    archive = site.config.paths.feeds / "archive"
    page = lxml_html.fromstring((archive / "2024-03-01.html").read_text(encoding="utf-8"))
    links = page.xpath("//nav[@class='toc']//a")
    assert [a.text for a in links] == ["业界新闻", name]
    assert page.get_element_by_id(links[1].get("href")[1:]).text == name
    script = (archive / "search-index.js").read_text(encoding="utf-8")
    (issue,) = json.loads(script.removeprefix("window.digestSearchIndex = ").rstrip().rstrip(";"))
    assert {(i["section"], i["anchor"]) for i in issue["items"]} == {("业界新闻", "s1"), (name, "s2")}
