"""The docs' pictures: the email at phone width (light and dark), the preview page, and the themed
example's email and archive (docs/how-to/theme.md).

Made from the bundled examples (digest.toml and examples/; examples/themed-weekly for the
theme) with headless Chromium (Debian's ``chromium``, driven by Playwright), in a
scratch copy so nothing of the repository's own state changes. The themed
example's logo address is answered from ``examples/themed-weekly/logo.png``, so
no network is needed. Run from anywhere:

    python tools/screenshots.py            # writes docs/email-phone-light.png, ... (each under 300 KB)
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.config import load_config  # noqa: E402
from digest.mail.render import DigestRenderer  # noqa: E402
from digest.newsletter.catalog import load_issue  # noqa: E402
from digest.newsletter.parse import ParseOptions, read_issue  # noqa: E402
from digest.pipeline import build_feeds_now  # noqa: E402
from digest.web.preview import PreviewServer, write_preview  # noqa: E402

ISSUE = "2026-11-01"
THEMED = "examples/themed-weekly/digest.toml"
THEMED_ISSUE = "tern-weekly-43"
SCHEMES = ("light", "dark")
DRAFT = "examples/drafts/2026-11-15.md"  # half-written: the preview says why it will not be mailed
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
PHONE = {"width": 375, "height": 1100}
DESKTOP = {"width": 1280, "height": 900}
FIELDS = {
    "email": "reader@example.com",
    "name": "读者",
    "unsubscribe_url": "https://example.org/digest/unsubscribe?token=…",
    "preferences_url": "https://example.org/digest/preferences?token=…",
}


def scratch_copy(into: Path) -> Path:
    """digest.toml and examples/ copied, so previews and state land in a throwaway directory."""
    shutil.copy(ROOT / "digest.toml", into / "digest.toml")
    shutil.copytree(ROOT / "examples", into / "examples", ignore=shutil.ignore_patterns("var", "output"))
    return into / "digest.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default: docs/)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshots: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(scratch_copy(Path(tmp)))
        html = DigestRenderer.for_issue(load_issue(config, ISSUE), config).variant().personalise(FIELDS)[0]
        draft = read_issue(Path(tmp) / DRAFT, ParseOptions.from_config(config))
        server = PreviewServer(write_preview(config, draft, NOW), config=config)
        server.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                for scheme in SCHEMES:
                    page = browser.new_page(viewport=PHONE, color_scheme=scheme)
                    page.set_content(html)
                    _save(page, args.out / f"email-phone-{scheme}.png")
                    page.close()
                page = browser.new_page(viewport=DESKTOP)
                page.goto(server.url)
                _save(page, args.out / "preview.png")
                themed_pictures(browser, Path(tmp), args.out)
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
    return 0


def themed_pictures(browser, tmp: Path, out: Path) -> None:
    """The themed example: its email on a phone, light and dark; an archive page on a phone and a desktop."""
    config = load_config(tmp / THEMED)
    issue = load_issue(config, THEMED_ISSUE)
    html = DigestRenderer.for_issue(issue, config).variant().personalise(FIELDS)[0]
    build_feeds_now(config, NOW)
    archive = config.paths.feeds / "archive"
    logo = (ROOT / "examples" / "themed-weekly" / "logo.png").read_bytes()
    shots = [
        *((f"theme-email-{s}.png", PHONE, s, None) for s in SCHEMES),
        ("theme-archive-phone-dark.png", PHONE, "dark", archive / f"{THEMED_ISSUE}.html"),
        ("theme-archive-desktop.png", DESKTOP, "light", archive / "index.html"),
    ]
    for name, viewport, scheme, path in shots:
        page = browser.new_page(viewport=viewport, color_scheme=scheme)
        page.route(config.theme.logo, lambda route: route.fulfill(body=logo, content_type="image/png"))
        if path is None:
            page.set_content(html)
        else:
            page.goto(path.as_uri() + ("?q=heron" if path.name == "index.html" else ""))
        _save(page, out / name)
        page.close()


def _save(page, path: Path) -> None:
    page.screenshot(path=str(path))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    raise SystemExit(main())
