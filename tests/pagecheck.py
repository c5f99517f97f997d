"""What every page must pass in Chromium: no sideways scrolling at 320, 375 and 1200 px, and axe-core.

axe-core (MPL-2.0, Deque Systems) is vendored as ``tests/vendor/axe-core/axe.min.js``
with its licence beside it, and injected into each page by Playwright; a
violation of impact "serious" or "critical" fails the page.
"""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = (320, 375, 1200)
SERIOUS = ("serious", "critical")

# Chromium puts its own banner (XSLT is being retired) on pages made by feed.xsl: not ours to judge.
AXE_RUN = """async () => {
  const context = {exclude: [['xslt-warning-banner']]};
  const result = await axe.run(context, {resultTypes: ['violations']});
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
}"""


def overflow(page) -> dict[int, int]:
    """Width -> document width, for each width at which the page scrolls sideways."""
    wide = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        scroll = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
        if scroll > width:
            wide[width] = scroll
    return wide


def axe_violations(page) -> list[str]:
    """The serious and critical axe-core violations of the page as loaded (at a phone's width)."""
    page.set_viewport_size({"width": 375, "height": 800})
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate(AXE_RUN)


def check(page, name: str) -> list[str]:
    """Every problem of the loaded page, named: overflow at a width, axe violations."""
    problems = [f"{name}: {scroll} px wide at {width} px" for width, scroll in overflow(page).items()]
    problems += [f"{name}: {violation}" for violation in axe_violations(page)]
    return problems
