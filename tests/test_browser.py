"""In a real headless browser (Debian's chromium): size and width bars, the preview page, feeds.

The bars hold for the bundled examples always and for every real issue when
../shared/corpus is present: HTML under 102 KB, no horizontal scrolling at a
375 px wide viewport, one column of at most 600 px on a desktop.
"""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from conftest import CORPUS_ISSUES, EXAMPLES, NOW
from digest.config import load_config
from digest.mail.render import DigestRenderer
from digest.newsletter.catalog import load_issue
from digest.newsletter.parse import ParseOptions, read_issue
from digest.pipeline import build_feeds_now
from digest.web.preview import PreviewServer, write_preview

pytestmark = pytest.mark.browser
GMAIL_CLIP = 102 * 1024
FIELDS = {
    "email": "reader@example.com",
    "unsubscribe_url": "https://example.org/u?token=x" * 3,
    "name": "读者",
}

COLUMN_JS = """() => {
  const boxes = [...document.querySelectorAll('h1, h2, p, li, a, .item-title')]
    .map(e => e.getBoundingClientRect()).filter(r => r.width > 0);
  return [Math.min(...boxes.map(r => r.left)), Math.max(...boxes.map(r => r.right))];
}"""


def rendered_html(path):
    config = load_config(EXAMPLES.parent / "digest.toml")
    issue = read_issue(path, ParseOptions.from_config(config))
    renderer = DigestRenderer.for_issue(issue, config)
    return renderer.variant().personalise(FIELDS)[0]


@pytest.fixture(scope="module")
def phone(browser):
    page = browser.new_page(viewport={"width": 375, "height": 800})
    yield page
    page.close()


@pytest.fixture(scope="module")
def desktop(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    page.close()


def check_bars(html, phone, desktop):
    assert len(html.encode("utf-8")) < GMAIL_CLIP
    phone.set_content(html)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    assert phone.evaluate("document.body.scrollWidth") <= 375
    desktop.set_content(html)
    left, right = desktop.evaluate(COLUMN_JS)
    assert right - left <= 600
    assert desktop.evaluate("document.documentElement.scrollWidth") <= 1280


@pytest.mark.parametrize("path", sorted((EXAMPLES / "issues").glob("*.md")), ids=lambda p: p.stem)
def test_example_digests_fit_phone_and_desktop(path, phone, desktop):
    check_bars(rendered_html(path), phone, desktop)


@pytest.mark.corpus
@pytest.mark.parametrize("path", CORPUS_ISSUES, ids=lambda p: p.stem)
def test_every_real_issue_fits_phone_and_desktop(path, phone, desktop):
    check_bars(rendered_html(path), phone, desktop)


def test_dark_mode_changes_the_colours(browser):
    html = rendered_html(EXAMPLES / "issues" / "2026-11-01.md")
    colours = []
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 375, "height": 800}, color_scheme=scheme)
        page.set_content(html)
        colours.append(
            page.evaluate(
                "getComputedStyle(document.querySelector('.card td') || document.body).backgroundColor"
            )
        )
        page.close()
    assert colours[0] != colours[1]


def test_preview_page_shows_desktop_and_phone_side_by_side(site, browser):
    site.write_config(
        '[email]\nfrom = "简报 <d@news.example.org>"\nunsubscribe_url = "https://news.example.org/u"\n'
    )
    site.copy_examples()
    preview = write_preview(site.config, load_issue(site.config, "2026-10-15"), NOW)
    server = PreviewServer(preview)
    server.start()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server.url)
        desktop_frame, phone_frame = page.frame_locator("#desktop"), page.frame_locator("#phone")
        assert desktop_frame.locator("h1").inner_text() == preview.issue.headline
        assert phone_frame.locator("h1").inner_text() == preview.issue.headline
        boxes = [page.locator(sel).bounding_box() for sel in ("#desktop", "#phone")]
        assert boxes[1]["width"] == pytest.approx(375, abs=2)
        assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"]  # side by side
        assert abs(boxes[0]["y"] - boxes[1]["y"]) < 5
        phone_width = page.evaluate(
            "document.querySelector('#phone').contentDocument.documentElement.scrollWidth"
        )
        assert phone_width <= 375
        assert "url-from-title" in page.locator("#lint").inner_text()
        assert preview.issue.items[0].title in page.locator("#text").inner_text()
        assert preview.issue.items[0].title in page.locator("#feed").inner_text()
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_a_feed_opened_in_the_browser_reads_as_a_page(site, browser):
    site.copy_examples()
    build_feeds_now(site.config, NOW)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site.config.paths.feeds))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        for name, title in (("papers.atom.xml", "简报 · 论文"), ("rss.xml", "简报")):
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/{name}")
            assert page.locator("h1").inner_text() == title
            assert page.locator("article").count() > 0
            assert "这是一个订阅源" in page.locator(".note").inner_text()  # the zh-CN catalog's "web feed"
    finally:
        page.close()
        server.shutdown()
        server.server_close()
