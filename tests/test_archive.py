"""The archive beside the feeds, "read online" pointing at it, and only feeds with entries offered."""

from __future__ import annotations

import feedparser
from lxml import html as lxml_html

from conftest import ISSUE, NOW, SERVE_CONFIG, write_subscribers
from digest.mail.render import DigestRenderer
from digest.newsletter.catalog import load_issue
from digest.pipeline import build_feeds_now
from servehelpers import request, serving, token

FIELDS = {"email": "r@example.com", "unsubscribe_url": "https://x/u", "preferences_url": "https://x/p"}


def read_online(config, stem):
    html = DigestRenderer.for_issue(load_issue(config, stem), config).variant().personalise(FIELDS)[0]
    doc = lxml_html.fromstring(html)
    return {a.text_content(): a.get("href") for a in doc.iter("a")}["在线阅读"]


def test_every_published_issue_gets_an_archive_page_with_the_feed_s_content(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    archive = site.config.paths.feeds / "archive"
    assert sorted(p.name for p in archive.glob("*.html")) == [
        "2026-10-01.html",
        "2026-10-15.html",
        "2026-11-01.html",
        "index.html",
    ]
    index = lxml_html.fromstring((archive / "index.html").read_text(encoding="utf-8"))
    assert [a.get("href") for a in index.xpath("//main//ul[@class='issues'][1]/li/a")] == [
        "2026-11-01.html",
        "2026-10-15.html",
        "2026-10-01.html",
    ]
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    entry = whole.entries[0]
    assert entry.link == "https://news.example.org/feeds/archive/2026-11-01.html"
    page = lxml_html.fromstring((archive / "2026-11-01.html").read_text(encoding="utf-8"))
    content = lxml_html.fromstring(entry.content[0].value)
    assert page.xpath("//main/div[@class='issue']//a/@href") == content.xpath("//a/@href")
    assert not page.xpath("//script") and page.get("lang") == "zh-CN"
    # "read online" in the email is that page; the section feeds lead back to it too
    assert read_online(site.config, "2026-11-01") == entry.link
    papers = (site.config.paths.feeds / "papers.atom.xml").read_text(encoding="utf-8")
    assert "archive/2026-11-01.html" in papers
    assert (archive / "sections" / "papers.html").exists()


def test_a_newsletter_with_its_own_site_keeps_its_permalink(site):
    text = site.config_path.read_text(encoding="utf-8").replace(
        'language = "zh-CN"\n', 'language = "zh-CN"\npermalink = "https://site.example.org/issues/{stem}/"\n'
    )
    site.config_path.write_text(text, encoding="utf-8")
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert whole.entries[0].link == "https://site.example.org/issues/2026-11-01/"
    assert read_online(site.config, "2026-11-01") == "https://site.example.org/issues/2026-11-01/"
    assert (site.config.paths.feeds / "archive" / "2026-11-01.html").exists()  # a spare copy all the same


def test_a_feed_with_no_entries_is_not_offered(site):
    site.write_issue("2024-03-01.md", ISSUE)  # 业界新闻 and 论文 only: projects, blogs, apps stay empty
    build_feeds_now(site.config, NOW)
    feeds = site.config.paths.feeds
    index = (feeds / "index.html").read_text(encoding="utf-8")
    opml = (feeds / "feeds.opml").read_text(encoding="utf-8")
    for slug in ("news", "papers"):
        assert f'href="{slug}.atom.xml"' in index and f"/{slug}.atom.xml" in opml
        assert f"archive/sections/{slug}.html" in index
    for slug in ("projects", "blogs", "apps"):
        assert slug not in index and slug not in opml
        assert (feeds / f"{slug}.atom.xml").exists()  # still written: a reader who has it keeps a valid feed
    assert "atom.xml" in opml and 'href="archive/index.html"' in index


def test_preferences_mark_a_section_with_no_entries(site):
    site.write_config(SERVE_CONFIG)
    site.write_issue("2024-03-01.md", ISSUE)
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "甲", "", "active", "")])
    with serving(site.config) as server:
        code, page, _ = request(
            server, "GET", f"/digest/preferences?token={token(site, 'a@example.com', 'preferences')}"
        )
    assert code == 200
    doc = lxml_html.fromstring(page)
    marked = {
        label.xpath("input/@value")[0]: bool(label.xpath(".//*[@class='empty']"))
        for label in doc.iter("label")
    }
    assert marked == {"news": False, "papers": False, "projects": True, "blogs": True, "apps": True}


def test_issues_with_one_file_name_in_two_year_folders_get_a_page_each_linked_safely(site):
    """Year folders repeat file names (``2025/01.md``, ``2026/01.md``), and a name may hold ``#``."""
    site.write_config()
    body = "---\ntitle: Weekly\ndate: {date}\n---\n\n## News\n\n- [{what}](https://example.org/{what})\n"
    for name, date in [
        ("2025/01.md", "2025-01-06"),
        ("2026/01.md", "2026-01-05"),
        ("#3-2026.01.12.md", "2026-01-12"),
    ]:
        (site.issues / name).parent.mkdir(parents=True, exist_ok=True)
        site.write_issue(name, body.format(date=date, what=f"item-{date}"))
    build_feeds_now(site.config, NOW)
    archive = site.config.paths.feeds / "archive"
    pages = sorted(p.name for p in archive.glob("*.html"))
    assert pages == ["#3-2026.01.12.html", "2025-01.html", "2026-01.html", "index.html"]
    index = lxml_html.fromstring((archive / "index.html").read_text(encoding="utf-8"))
    hrefs = index.xpath("//main//ul[@class='issues'][1]/li/a/@href")
    assert hrefs == ["%233-2026.01.12.html", "2026-01.html", "2025-01.html"]
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert {e.link for e in whole.entries} == {
        "https://news.example.org/feeds/archive/%233-2026.01.12.html",
        "https://news.example.org/feeds/archive/2026-01.html",
        "https://news.example.org/feeds/archive/2025-01.html",
    }
    newest = lxml_html.fromstring((archive / "#3-2026.01.12.html").read_text(encoding="utf-8"))
    assert "item-2026-01-12" in newest.text_content()
