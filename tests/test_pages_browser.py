"""Every page digest makes, in Chromium, light and dark: no sideways scrolling at 320, 375 and 1200 px,
no word broken inside, no serious or critical axe-core violation (the email with its <style> and
without); the email keeps its look with every <style> stripped; the feed pages link each entry; the
archive's search works from a copy opened over file://; a reader subscribes from the form page to the
confirming POST.

One browser for the module (conftest.browser); the pages are checked in a loop.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import functools
import http.server
import re
import shutil
import threading

import pytest
from lxml import etree

from conftest import EXAMPLES, NOW, SERVE_CONFIG, write_subscribers
from digest.config import load_config
from digest.mail.render import DigestRenderer
from digest.newsletter.catalog import load_issue
from digest.pipeline import build_feeds_now
from digest.subscribers.reading import read_subscribers
from digest.web.preview import PreviewServer, write_preview
from pagecheck import check
from servehelpers import KNOWN, serving, token

pytestmark = pytest.mark.browser
FIELDS = {
    "email": "reader@example.com",
    "name": "读者",
    "unsubscribe_url": "https://news.example.org/digest/unsubscribe?token=x",
    "preferences_url": "https://news.example.org/digest/preferences?token=x",
}


@pytest.fixture
def newsletter(site):
    """The bundled example as a site with digest serve's settings, its feeds built."""
    site.write_config(SERVE_CONFIG)
    site.copy_examples()
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "甲", "", "active", "")])
    build_feeds_now(site.config, NOW)
    return site


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        return


@contextlib.contextmanager
def static_files(directory):
    handler = functools.partial(QuietFiles, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page(browser):
    context = browser.new_context(bypass_csp=True)  # lets axe-core in past digest serve's strict CSP
    yield context.new_page()
    context.close()


def email_html(site, stem="2026-11-01"):
    renderer = DigestRenderer.for_issue(load_issue(site.config, stem), site.config)
    return renderer.variant().personalise(FIELDS)[0]


FEED_PAGES = (
    "index.html",
    "atom.xml",
    "papers.atom.xml",
    "rss.xml",
    "news.rss.xml",
    "archive/index.html",
    "archive/index.html?q=NPU",
    "archive/2026-11-01.html",
    "archive/2026-10-01.html",
    "archive/sections/papers.html",
)
THEMED_PAGES = (
    "index.html",
    "papers.atom.xml",
    "archive/index.html?q=the",
    "archive/tern-weekly-43.html",
    "archive/tern-weekly-41.html",
    "archive/sections/news.html",
)


def without_style(html: str) -> str:
    stripped = re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S)
    assert "<style" not in stripped
    return stripped


@pytest.fixture
def themed(tmp_path):
    """The themed example (it reads its sibling's issues) in a scratch copy, its feeds built."""
    for name in ("themed-weekly", "pelican-weekly"):
        shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns("var", "output"))
    config = load_config(tmp_path / "themed-weekly" / "digest.toml")
    build_feeds_now(config, NOW)
    return config


def test_the_themed_example_passes_in_light_and_dark(themed, page):
    logo = (EXAMPLES / "themed-weekly" / "logo.png").read_bytes()
    page.route(themed.theme.logo, lambda route: route.fulfill(body=logo, content_type="image/png"))
    problems = []
    for stem in ("tern-weekly-41", "tern-weekly-42", "tern-weekly-43"):
        renderer = DigestRenderer.for_issue(load_issue(themed, stem), themed)
        html = renderer.variant().personalise(FIELDS)[0]
        page.set_content(html)
        problems += check(page, f"themed email {stem}")
        page.set_content(without_style(html))
        problems += check(page, f"themed email {stem} without <style>", schemes=("light",))
    with static_files(themed.paths.feeds) as feeds:
        for name in THEMED_PAGES:
            page.goto(feeds + name)
            problems += check(page, f"themed {name}")
    assert not problems, "\n".join(problems)


def test_the_archive_search_finds_an_item_from_a_copy_opened_over_file(themed, page, tmp_path):
    copy = tmp_path / "copied-feeds"
    shutil.copytree(themed.paths.feeds, copy)
    issue = load_issue(themed, "tern-weekly-42")
    item = issue.items[0]
    word = max(re.findall(r"[A-Za-z]{4,}", item.title), key=len)
    index = (copy / "archive" / "index.html").as_uri()
    page.goto(index)
    page.fill("#q", word.upper())  # as a reader types it
    found = page.locator("#results a", has_text=item.title)
    assert found.count() >= 1
    target = found.first.get_attribute("href")
    assert target.startswith("tern-weekly-42.html#s")
    page.goto(f"{index}?q={word}")  # the search box in every page's header asks this way
    assert page.locator("#results a", has_text=item.title).count() >= 1
    found = page.locator("#results a", has_text=item.title).first
    found.click()
    assert page.url.startswith((copy / "archive" / "tern-weekly-42.html").as_uri())
    assert page.locator(f"#{target.split('#')[1]}").count() == 1
    page.goto(f"{index}?q=zzqqxxnothing")
    assert page.locator("#results li").count() == 0 and page.locator("#status").inner_text()


def test_every_page_fits_every_width_and_passes_axe(newsletter, page):
    site = newsletter
    problems = []
    for stem in ("2026-10-01", "2026-10-15", "2026-11-01"):
        html = email_html(site, stem)
        page.set_content(html)
        problems += check(page, f"email {stem}")
        page.set_content(without_style(html))
        problems += check(page, f"email {stem} without <style>", schemes=("light",))
    preview = write_preview(site.config, load_issue(site.config, "2026-10-15"), NOW)
    previews = PreviewServer(preview, config=site.config)
    previews.start()
    try:
        for query in ("", "?scheme=dark&sections=papers"):
            page.goto(previews.url + query)
            problems += check(page, f"preview {query}")
    finally:
        previews.shutdown()
        previews.server_close()
    with static_files(site.config.paths.feeds) as feeds:
        for name in FEED_PAGES:
            page.goto(feeds + name)
            problems += check(page, name)
    long_address = "a.very.long.address.that.goes.on.and.on.and.on@subdomain.of.example.com"
    write_subscribers(site.root / "subscribers.csv", [(long_address, "甲", "", "active", "")])
    with serving(site.config) as server:
        base = server.url.rstrip("/") + "/digest"
        for path in (
            "/",
            "/subscribe",
            f"/preferences?token={token(site, long_address, 'preferences')}",
            f"/unsubscribe?token={token(site, long_address, 'unsubscribe')}",
            f"/confirm?token={token(site, long_address, 'confirm', expires=2**40)}",
            "/nowhere",
        ):
            page.goto(server.url.rstrip("/") + path if path == "/" else base + path)
            problems += check(page, f"serve {path.split('?')[0]}")
        page.goto(base + f"/unsubscribe?token={token(site, long_address, 'unsubscribe')}")
        page.click("button[type=submit]")
        problems += check(page, "serve: the done page")
    assert not problems, "\n".join(problems)


COMPUTED = """(sel) => [...document.querySelectorAll(sel)].map(e => {
  const s = getComputedStyle(e);
  return [s.color, s.textDecorationLine, s.fontSize, s.fontWeight];
})"""


def test_the_email_keeps_its_look_with_every_style_element_stripped(newsletter, page):
    html = email_html(newsletter)
    stripped = re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S)
    assert "<style" not in stripped
    page.set_content(stripped)
    page.set_viewport_size({"width": 375, "height": 800})
    titles = page.evaluate(COMPUTED, ".item-title a")
    assert len(titles) >= 14
    assert {tuple(t) for t in titles} == {("rgb(11, 87, 208)", "none", "16px", "600")}
    sources = page.evaluate(COMPUTED, ".item > .meta:not(:has(a))")
    assert sources and {(s[0], s[2]) for s in sources} == {("rgb(89, 99, 110)", "13px")}
    labels = page.evaluate(COMPUTED, ".label")
    assert labels and {(s[0], s[2]) for s in labels} == {("rgb(89, 99, 110)", "13px")}
    running = page.evaluate(COMPUTED, ".item p a, .item .meta a, li a")  # links inside running text
    assert running and {tuple(r[:2]) for r in running} == {("rgb(11, 87, 208)", "underline")}
    # the label stands apart from the title: "[NeurIPS 2026] AutoMix-Edge", never "[NeurIPS 2026]AutoMix"
    first = page.locator(".item-title").filter(has_text="AutoMix-Edge").inner_text()
    assert first.startswith("[NeurIPS 2026] AutoMix-Edge")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_the_email_has_one_header_line_and_a_table_of_sections(newsletter, page):
    page.set_content(email_html(newsletter))
    issue = load_issue(newsletter.config, "2026-11-01")
    assert page.locator("h1").inner_text() == issue.headline
    body = page.locator("body").inner_text()
    assert body.count("2026年11月1日") == 1 and issue.title not in body  # name and date said once
    toc = page.locator(".toc a")
    assert toc.count() == len([s for s in issue.sections if s.items])
    for n in range(toc.count()):
        target = toc.nth(n).get_attribute("href")
        assert page.locator(target).count() == 1  # each jump link lands on its section's heading
    footer = page.locator("body").inner_text()
    assert "只有一个按钮的页面" in footer and "订阅" in footer
    assert page.locator("a[href='https://news.example.org/digest/subscribe']").count() == 1


def test_feed_pages_link_every_entry_and_keep_its_links(newsletter, page):
    feeds_dir = newsletter.config.paths.feeds
    atom = "{http://www.w3.org/2005/Atom}"
    with static_files(feeds_dir) as feeds:
        for name in ("papers.atom.xml", "atom.xml", "papers.rss.xml"):
            root = etree.parse(str(feeds_dir / name))
            if name.endswith("atom.xml"):
                wanted = [e.find(f"{atom}link").get("href") for e in root.iter(f"{atom}entry")]
            else:
                wanted = [e.findtext("link") for e in root.iter("item")]
            page.goto(feeds + name)
            shown = page.eval_on_selector_all("article h2 a", "as => as.map(a => a.getAttribute('href'))")
            assert shown == wanted and all(shown), name
            assert page.locator("article .content a[href^='https://']").count() > 0, name  # summary links
            assert page.evaluate("document.documentElement.lang") == "zh-CN"
        page.goto(feeds + "papers.atom.xml")
        assert page.locator("article time").first.inner_text() == "2026年11月1日"  # the site's language
        page.goto(feeds + "index.html")
        twins = page.eval_on_selector_all(
            ".feeds a[href^='archive/']", "as => as.map(a => a.getAttribute('href'))"
        )
        for twin in twins:
            page.goto(feeds + twin)
            assert page.locator("h1").count() == 1, twin


def test_a_reader_subscribes_from_the_form_page_to_the_confirming_post(newsletter, page):
    site = newsletter
    with serving(site.config) as server:
        page.goto(server.url.rstrip("/") + "/digest/subscribe")
        assert "订阅《简报》" in page.locator("h1").inner_text()
        page.fill("input[name=email]", "new@example.com")
        page.check("input[value=papers]")
        page.click("button[type=submit]")
        assert "确认" in page.locator("#message").inner_text()
        server.drain()  # the confirmation mail leaves from a background worker
        mails = sorted((site.root / "maildir" / "new").iterdir())
        message = email.message_from_bytes(mails[-1].read_bytes(), policy=email.policy.default)
        link = re.search(r"https://\S+", message.get_content()).group(0)
        assert read_subscribers(site.root / "subscribers.csv", KNOWN).find("new@example.com") is None
        page.goto(link.replace("https://news.example.org", server.url.rstrip("/")))
        page.click("button[type=submit]")
        assert "欢迎" in page.locator("#message").inner_text()
    found = read_subscribers(site.root / "subscribers.csv", KNOWN).find("new@example.com")
    assert found is not None and found.active and found.sections == {"papers"}


def test_the_done_page_leads_back_through_the_preferences(newsletter, page):
    site = newsletter
    with serving(site.config) as server:
        page.goto(
            server.url.rstrip("/")
            + f"/digest/unsubscribe?token={token(site, 'a@example.com', 'unsubscribe')}"
        )
        page.click("button[type=submit]")
        assert (
            read_subscribers(site.root / "subscribers.csv", KNOWN).find("a@example.com").status
            == "unsubscribed"
        )
        back = page.locator("a", has_text="重新订阅").get_attribute("href")
        page.goto(back.replace("https://news.example.org", server.url.rstrip("/")))
        page.check("input[value=news]")
        page.click("button[type=submit]")
    found = read_subscribers(site.root / "subscribers.csv", KNOWN).find("a@example.com")
    assert found.active and found.sections == {"news"}


def test_the_preview_warns_first_and_follows_edits(site, page):
    site.write_config(SERVE_CONFIG)
    path = site.copy_examples()[-1]  # 2026-11-01
    text = path.read_text(encoding="utf-8")
    rebuild = functools.partial(
        lambda: write_preview(site.config, load_issue(site.config, "2026-11-01"), NOW)
    )
    server = PreviewServer(rebuild(), config=site.config, rebuild=rebuild)
    server.start()
    try:
        page.set_viewport_size({"width": 1200, "height": 900})
        page.goto(server.url)
        decision = page.locator("#decision")
        assert "寄出" in decision.inner_text() and "不会" not in decision.inner_text()
        inbox = page.locator("#inbox").inner_text()
        assert "简报 <digest@news.example.org>" in inbox and "启明星芯Q9" in inbox
        # an edit that breaks a link: the page reloads by itself and says why it will not be mailed
        broken = text.replace("](https://arxiv.org/abs/2610.11842)", "]()", 1)
        line = broken.splitlines().index(next(x for x in broken.splitlines() if "]()" in x)) + 1
        with page.expect_navigation():
            path.write_text(broken, encoding="utf-8")
        decision = page.locator("#decision")
        assert decision.inner_text().startswith("不会寄出：1 错误")
        assert f"第 {line} 行" in decision.inner_text()
        assert decision.bounding_box()["y"] < page.locator("#desktop").bounding_box()["y"]
        assert page.locator("#lint li.error").count() == 1
        assert page.locator("#report").inner_text().count("empty-link-target") == 0  # each finding once
        # light and dark; a subscriber of one section
        light = (
            page.frame_locator("#phone").locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
        )
        with page.expect_navigation(wait_until="load"):  # the page and its frames, loaded again
            page.click("#scheme")
        dark = (
            page.frame_locator("#phone").locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
        )
        assert light != dark
        page.check("#picker input[value=papers]")
        with page.expect_navigation(wait_until="load"):
            page.click("#picker button")
        phone = page.frame_locator("#phone")
        phone.locator("h2").first.wait_for()  # all_inner_texts reads at once: wait until the email is there
        headings = phone.locator("h2").all_inner_texts()
        assert "论文" in headings and "业界新闻" not in headings
    finally:
        server.shutdown()
        server.server_close()
