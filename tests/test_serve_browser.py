"""The preferences page of `digest serve` in a real headless browser (Debian's chromium).

Its own module: Playwright's sync API holds an event loop while its browser is
open, so it is kept apart from tests that run the sender's asyncio loop.
"""

from __future__ import annotations

import pytest

from digest.subscribers.reading import read_subscribers
from servehelpers import KNOWN, token


@pytest.mark.browser
def test_preferences_page_in_a_real_browser(site, server, browser):
    page = browser.new_page()
    try:
        page.goto(
            server.url.rstrip("/") + f"/preferences?token={token(site, 'a@example.com', 'preferences')}"
        )
        assert page.locator("h1").inner_text() == "a@example.com 的订阅栏目"
        page.check("input[value=papers]")
        page.check("input[value=apps]")
        page.click("button[type=submit]")
        assert "已保存" in page.locator("#message").inner_text()
        assert page.is_checked("input[value=papers]") and page.is_checked("input[value=apps]")
        assert not page.is_checked("input[value=news]")
    finally:
        page.close()
    assert read_subscribers(site.root / "subscribers.csv", KNOWN).find("a@example.com").sections == {
        "papers",
        "apps",
    }
