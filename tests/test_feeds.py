"""Feeds: valid in a real parser, stable ids and dates, deterministic and safe."""

from __future__ import annotations

import datetime as dt
import html
import html.parser
import os
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest

from conftest import NOW, run_digest
from digest.feeds.build import FORMATS
from digest.feeds.entries import collect_feeds
from digest.pipeline import build_feeds_now
from digest.release.rules import published_issues

ATOM = "{http://www.w3.org/2005/Atom}"


def feed_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(("atom.xml", "rss.xml")))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def ids(directory: Path) -> dict[str, list[str]]:
    return {p.name: [e.id for e in feedparser.parse(p.read_bytes()).entries] for p in feed_files(directory)}


def test_every_feed_is_valid_with_the_expected_entries(site):
    site.copy_examples()
    build = build_feeds_now(site.config, NOW)
    feeds_dir = site.config.paths.feeds
    files = feed_files(feeds_dir)
    names = {p.name for p in files}
    assert {"atom.xml", "rss.xml"} <= names
    for slug in ("news", "papers", "projects", "blogs", "apps"):
        assert {f"{slug}.atom.xml", f"{slug}.rss.xml"} <= names
    issues = published_issues(site.parsed(), NOW)
    per_slug: dict[str, int] = {}
    for issue in issues:
        for section in issue.sections:
            per_slug[section.slug] = per_slug.get(section.slug, 0) + len(section.items)
    for path in files:
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo is False, (path.name, parsed.get("bozo_exception"))
        key = path.name.split(".")[0]
        expected = len(issues) if key in ("atom", "rss") else per_slug.get(key, 0)
        assert len(parsed.entries) == expected, path.name
        assert parsed.feed.language == "zh-CN"
    assert build.entries == len(issues) + sum(per_slug.values())


def test_atom_has_every_element_rfc4287_requires(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    for path in site.config.paths.feeds.glob("*atom.xml"):
        root = ElementTree.parse(path).getroot()
        assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
        for tag in ("id", "title", "updated", "author/" + ATOM + "name"):
            assert root.find(ATOM + tag) is not None, (path.name, tag)
        for entry in root.findall(ATOM + "entry"):
            for tag in ("id", "title", "updated", "link"):
                assert entry.find(ATOM + tag) is not None
            assert entry.find(ATOM + "content").get("type") == "html"


def test_times_are_rfc3339_and_rfc822_in_the_site_timezone(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    atom = (site.config.paths.feeds / "atom.xml").read_text()
    rss = (site.config.paths.feeds / "rss.xml").read_text()
    assert "<published>2026-11-01T00:00:00+08:00</published>" in atom
    assert "<pubDate>Sun, 01 Nov 2026 00:00:00 +0800</pubDate>" in rss
    assert not re.search(r"<(updated|published)>[^<]*T[^<+Z-]*</", atom)  # never naive


def test_newest_first_and_limit_bounds_every_feed(site):
    site.copy_examples()
    site.write_config("[feeds]\nlimit = 2\n")
    build_feeds_now(site.config, NOW)
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert [e.published[:10] for e in whole.entries] == ["2026-11-01", "2026-10-15"]
    apps = feedparser.parse((site.config.paths.feeds / "apps.atom.xml").read_bytes())
    assert {e.published[:10] for e in apps.entries} == {"2026-10-15"}  # 应用 is only in that issue
    papers = feedparser.parse((site.config.paths.feeds / "papers.atom.xml").read_bytes())
    assert {e.published[:10] for e in papers.entries} == {"2026-11-01", "2026-10-15"}


def test_unchanged_rebuild_rewrites_nothing_even_after_every_mtime_moved(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    before = snapshot(site.config.paths.feeds)
    state_before = (site.config.paths.state / "feeds.json").read_bytes()
    for path in [*site.issues.iterdir(), *site.config.paths.feeds.iterdir()]:
        os.utime(path, (1, 1))
    later = NOW + dt.timedelta(days=3)
    build = build_feeds_now(site.config, later)
    assert build.written == ()
    assert snapshot(site.config.paths.feeds) == before
    assert (site.config.paths.state / "feeds.json").read_bytes() == state_before


def test_an_edit_moves_updated_never_ids(site):
    paths = site.copy_examples()
    build_feeds_now(site.config, NOW)
    ids_before = ids(site.config.paths.feeds)
    papers_before = {
        e.id: e for e in feedparser.parse((site.config.paths.feeds / "papers.atom.xml").read_bytes()).entries
    }
    edited = next(p for p in paths if p.stem == "2026-10-15")
    text = edited.read_text(encoding="utf-8")
    first_summary = re.search(r"^## 论文.*?\n摘要：", text, re.S | re.M)
    assert first_summary
    edited.write_text(
        text[: first_summary.end()] + "（更正）" + text[first_summary.end() :], encoding="utf-8"
    )
    for path in site.issues.iterdir():
        os.utime(path, (2, 2))
    later = NOW + dt.timedelta(hours=5)
    build_feeds_now(site.config, later)
    assert ids(site.config.paths.feeds) == ids_before
    papers_after = feedparser.parse((site.config.paths.feeds / "papers.atom.xml").read_bytes()).entries
    changed = [e for e in papers_after if e.updated != papers_before[e.id].updated]
    assert len(changed) == 1
    assert changed[0].updated.startswith("2026-11-22T17:00:00")
    assert "（更正）" in changed[0].content[0].value
    whole = {
        e.id: e.updated for e in feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes()).entries
    }
    assert sorted(whole.values())[-1].startswith("2026-11-22T17:00:00")


def test_ids_are_unique_tag_uris_and_rss_guids_are_not_permalinks(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    for name, entry_ids in ids(site.config.paths.feeds).items():
        assert len(entry_ids) == len(set(entry_ids)), name
        assert all(i.startswith("tag:news.example.org,20") for i in entry_ids)
    rss = (site.config.paths.feeds / "papers.rss.xml").read_text()
    assert '<guid isPermaLink="false">tag:news.example.org,' in rss


def test_drafts_fatal_and_future_issues_are_not_fed(site):
    site.copy_examples()
    site.write_issue(
        "2026-11-10.md", "---\ndraft: true\n---\n# 简报 (2026-11-10)：草稿\n## 论文\n- [a](https://a.org)\n"
    )
    site.write_issue("2026-11-12.md", "# 简报 (2026-11-12)：<标题>\n## 论文\n- [b](https://b.org)\n")
    site.write_issue("2026-12-01.md", "# 简报 (2026-12-01)：未来\n## 论文\n- [c](https://c.org)\n")
    site.write_issue("2026-11-13.md", "")
    build_feeds_now(site.config, NOW)
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert [e.published[:10] for e in whole.entries] == ["2026-11-01", "2026-10-15", "2026-10-01"]
    build_feeds_now(site.config, dt.datetime(2026, 12, 1, 0, 0, tzinfo=NOW.tzinfo))
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert whole.entries[0].published.startswith("2026-12-01")


HOSTILE = """\
# 简报 (2026-11-20)：安全 ]]> 测试\x01

> 导读：<script>alert(1)</script>

## 论文

- [Title with\x0b control | 源](https://a.org/x)
摘要：<b onmouseover="steal()">粗</b> <a href="javascript:alert(1)">坏链接</a> <iframe src="https://evil"></iframe>
相对链接 [上期](../2026-11-01.html) 与 <img src="https://t.example/pixel.gif"> ]]> 结束。
"""


def test_content_is_sanitised_links_absolute_and_xml_safe(site):
    site.write_issue("2026-11-20.md", HOSTILE)
    build_feeds_now(site.config, NOW)
    for path in feed_files(site.config.paths.feeds):
        raw = path.read_bytes()
        parsed = feedparser.parse(raw)
        assert parsed.bozo is False, path.name
        text = raw.decode()
        for bad in (
            "<script",
            "onmouseover",
            "javascript:",
            "<iframe",
            "&lt;iframe",
            "&lt;script",
            "\x01",
            "\x0b",
        ):
            assert bad not in text, (path.name, bad)
        if path.name.startswith(("papers", "atom", "rss")):
            assert "https://news.example.org/2026-11-01.html" in text, path.name
            # escaped, never CDATA: as text (a title) or as escaped HTML (a summary, content)
            assert "]]&gt;" in text or "]]&amp;gt;" in text
            entry = feedparser.parse(raw).entries[0]
            assert "]]>" in html.unescape(entry.summary), path.name  # and readers still see it
    papers = feedparser.parse((site.config.paths.feeds / "papers.atom.xml").read_bytes())
    assert papers.entries[0].title == "Title with control"
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert whole.entries[0].title == "简报 (2026-11-20)：安全 ]]> 测试"


def test_index_page_opml_and_stylesheet(site):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    feeds_dir = site.config.paths.feeds
    index = (feeds_dir / "index.html").read_text()
    for path in feed_files(feeds_dir):
        fmt = next(f for f in FORMATS if path.name.endswith(f.suffix))
        assert f'<link rel="alternate" type="{fmt.media_type}"' in index
        assert f'href="{path.name}"' in index
        assert path.read_text().splitlines()[1] == '<?xml-stylesheet type="text/xsl" href="feed.xsl"?>'
    opml = ElementTree.parse(feeds_dir / "feeds.opml").getroot()
    urls = {o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")}
    for slug in ("news", "papers", "projects", "blogs", "apps"):
        assert f"https://news.example.org/feeds/{slug}.atom.xml" in urls
    xsl = ElementTree.parse(feeds_dir / "feed.xsl").getroot()
    assert xsl.tag == "{http://www.w3.org/1999/XSL/Transform}stylesheet"


def test_unknown_section_gets_its_own_ascii_feed(site):
    site.write_issue("2026-11-20.md", "# 简报 (2026-11-20)：x\n## 观点\n- [a | b](https://a.org)\n")
    build_feeds_now(site.config, NOW)
    (issue,) = site.parsed()
    slug = issue.sections[0].slug
    assert slug == "guan-dian"  # the name transliterated: a readable ASCII feed slug
    feed = feedparser.parse((site.config.paths.feeds / f"{slug}.atom.xml").read_bytes())
    assert [e.link for e in feed.entries] == ["https://a.org"]


def test_a_section_renamed_in_the_config_titles_its_feed(site):
    site.write_config("[feeds.sections]\n'行业新闻' = 'news'\n")
    site.write_issue("2026-11-20.md", "# 简报 (2026-11-20)：x\n## 行业新闻\n- [a | b](https://a.org)\n")
    build_feeds_now(site.config, NOW)
    feed = feedparser.parse((site.config.paths.feeds / "news.atom.xml").read_bytes())
    assert "行业新闻" in feed.feed.title and [e.link for e in feed.entries] == ["https://a.org"]


@pytest.mark.corpus
def test_every_item_link_of_the_corpus_is_in_its_section_feed(site, corpus_issues):
    for path in corpus_issues:  # copies: a symlink out of the issues folder is not published
        shutil.copy(path, site.issues / path.name)
    site.write_config("[feeds]\nlimit = 1000\n")
    build_feeds_now(site.config, NOW)
    issues = published_issues(site.parsed(), NOW)
    assert len(issues) == len(corpus_issues)
    for feed in collect_feeds(issues, site.config):
        if feed.key == "all":
            continue
        parsed = feedparser.parse((site.config.paths.feeds / f"{feed.key}.atom.xml").read_bytes())
        assert parsed.bozo is False
        links = [e.link for e in parsed.entries]
        expected = [
            i.href or "" for issue in issues for s in issue.sections if s.slug == feed.key for i in s.items
        ]
        assert len(links) == len(expected)
        assert {link for link in expected if link} <= set(links)
    whole = feedparser.parse((site.config.paths.feeds / "rss.xml").read_bytes())
    assert len(whole.entries) == len(corpus_issues) and whole.bozo is False
    assert build_feeds_now(site.config, NOW + dt.timedelta(days=1)).written == ()


def test_same_link_in_two_sections_of_one_issue_is_stable(site):
    site.write_issue(
        "2026-11-20.md",
        "# 简报 (2026-11-20)：x\n## 论文\n- [a | b](https://a.org)\n摘要：一。\n## 博文\n- [a2 | b](https://a.org)\n摘要：二。\n",
    )
    build_feeds_now(site.config, NOW)
    assert build_feeds_now(site.config, NOW + dt.timedelta(days=1)).written == ()


def test_feeds_command(site, run_env):

    site.copy_examples()
    result = run_digest(["feeds", "--config", str(site.config_path)], run_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("feeds: 6 feeds, ")
    assert (site.config.paths.feeds / "papers.atom.xml").exists()
    again = run_digest(["feeds", "--config", str(site.config_path)], run_env)
    assert "nothing changed" in again.stdout


def test_relative_item_links_are_absolute_in_section_feeds(site):
    site.write_issue(
        "2026-11-20.md", "# 简报 (2026-11-20)：x\n## 论文\n- [相对 | 源](../papers/one.html)\n摘要：x。\n"
    )
    build_feeds_now(site.config, NOW)
    for name in ("papers.atom.xml", "papers.rss.xml"):
        entry = feedparser.parse((site.config.paths.feeds / name).read_bytes()).entries[0]
        assert entry.link == "https://news.example.org/papers/one.html"


def test_two_files_with_one_date_give_one_issue_in_the_feeds(site):
    text = "# 简报 (2026-11-20)：{}\n## 论文\n- [a | b](https://a.org)\n摘要：x。\n"
    site.write_issue("2026-11-20.md", text.format("甲"))
    site.write_issue("2026-11-20-copy.md", text.format("乙"))
    build_feeds_now(site.config, NOW)
    for name in ("atom.xml", "rss.xml", "papers.atom.xml", "papers.rss.xml"):
        parsed = feedparser.parse((site.config.paths.feeds / name).read_bytes())
        entry_ids = [e.id for e in parsed.entries]
        assert len(entry_ids) == len(set(entry_ids)) == 1, name
    whole = feedparser.parse((site.config.paths.feeds / "atom.xml").read_bytes())
    assert whole.entries[0].title == "简报 (2026-11-20)：乙"  # newest first, then by file name: stable


ATTACKS = """\
# 简报 (2026-11-21)：攻击 &lt;b onclick=x&gt;测试

**关注 `<img src=x onerror=alert(1)>`**

> 导读：`<img src=x onerror=alert(2)>` 与 &lt;script&gt;alert(3)&lt;/script&gt; 和 [点我](javascript:alert(4))

## 论文

- [标题 `<svg onload=alert(5)>` | 源 <img src=x onerror=alert(6)>](https://arxiv.org/abs/1)
摘要：`<img src=x onerror=alert(7)>` 与 &lt;script&gt;alert(8)&lt;/script&gt; [坏](javascript:alert(9))
<a href="javascript:alert(10)">链接</a>
"""


class _Markup(html.parser.HTMLParser):
    """Every tag and attribute a reader rendering a field as HTML would create."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def _markup_in(value: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Markup()
    parser.feed(value)
    parser.close()
    return parser.tags


def test_no_tag_or_handler_survives_in_any_field_of_any_feed(site):
    """RSS <description> carried live markup from inline code and escaped tags (an XSS in readers)."""
    from digest.newsletter.markup import ALLOWED_TAGS

    site.write_issue("2026-11-21.md", ATTACKS)
    build_feeds_now(site.config, NOW)
    checked = 0
    for path in feed_files(site.config.paths.feeds):
        parsed = feedparser.parse(path.read_bytes(), sanitize_html=False)  # as a naive reader sees it
        for entry in parsed.entries:
            fields = {
                "title": entry.get("title", ""),
                "summary/description": entry.get("summary", ""),
                **{f"content[{n}]": c.value for n, c in enumerate(entry.get("content", []))},
                **{f"category[{n}]": t.term for n, t in enumerate(entry.get("tags", []))},
            }
            for name, value in fields.items():
                for tag, attrs in _markup_in(value):
                    where = (path.name, name, value)
                    assert name.startswith("content") and tag in ALLOWED_TAGS, where
                    assert not any(attr.startswith("on") for attr, _ in attrs), where
                    assert not any("javascript:" in (v or "").lower() for _, v in attrs), where
                checked += 1
    assert checked >= 16  # every field of the issue entry and the item entry, in Atom and RSS
