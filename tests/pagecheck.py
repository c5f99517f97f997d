"""What every page must pass in Chromium, light and dark: no sideways scrolling at 320, 375 and 1200 px,
no word broken inside where it would fit on a line, and axe-core.

axe-core (MPL-2.0, Deque Systems) is vendored as ``tests/vendor/axe-core/axe.min.js``
with its licence beside it, and injected into each page by Playwright; a
violation of impact "serious" or "critical" fails the page. The colour scheme is
emulated with ``page.emulate_media``, so one page is checked in both.
"""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = (320, 375, 1200)
SCHEMES = ("light", "dark")
SERIOUS = ("serious", "critical")

# Chromium puts its own banner (XSLT is being retired) on pages made by feed.xsl: not ours to judge.
AXE_RUN = """async () => {
  const context = {exclude: [['xslt-warning-banner']]};
  const result = await axe.run(context, {resultTypes: ['violations']});
  return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
    .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
}"""

# A word broken inside its letters although it would fit on a line: "Ent/rie/s" in a squeezed table
# cell, "atom.xm/l". A word here is a run of Latin letters, digits and punctuation between spaces or
# CJK text (which may break anywhere); it may break at its hyphens and slashes, and anywhere when it
# is wider than its box (a long URL or address): it must.
BROKEN_WORDS = """() => {
  const WORD = /[^\\s\\u2E80-\\u9FFF\\u3000-\\u303F\\uF900-\\uFAFF\\uFF00-\\uFFEF]{2,}/g;
  const LETTERS = /[A-Za-z0-9\\u00C0-\\u024F]{2,}/g;
  const range = document.createRange();
  const measure = (node, start, end) => {
    range.setStart(node, start);
    range.setEnd(node, end);
    const rects = [...range.getClientRects()].filter(r => r.width > 0);
    return [new Set(rects.map(r => Math.round(r.top))).size, rects.reduce((sum, r) => sum + r.width, 0)];
  };
  const broken = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const box = node.parentElement;
    if (!box || box.closest('script, style, [hidden]') || !box.getClientRects().length) continue;
    let block = box;
    while (block.parentElement && getComputedStyle(block).display.startsWith('inline')) {
      block = block.parentElement;
    }
    for (const word of node.data.matchAll(WORD)) {
      const [lines, width] = measure(node, word.index, word.index + word[0].length);
      if (lines < 2 || width >= block.clientWidth - 1) continue;
      for (const run of word[0].matchAll(LETTERS)) {
        const start = word.index + run.index;
        const [runLines] = measure(node, start, start + run[0].length);
        if (runLines > 1) broken.push(`${word[0]} (in <${box.localName}>)`);
      }
    }
  }
  return [...new Set(broken)].slice(0, 5);
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


def broken_words(page) -> dict[int, list[str]]:
    """Width -> the words broken inside at that width (none: left out)."""
    broken = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        found = page.evaluate(BROKEN_WORDS)
        if found:
            broken[width] = found
    return broken


def axe_violations(page, width: int = 375) -> list[str]:
    """The serious and critical axe-core violations of the page as loaded (at a phone's width)."""
    page.set_viewport_size({"width": width, "height": 800})
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return page.evaluate(AXE_RUN)


def check(page, name: str, schemes: tuple[str, ...] = SCHEMES) -> list[str]:
    """Every problem of the loaded page in each colour scheme, named: overflow, broken words, axe."""
    problems = []
    for scheme in schemes:
        page.emulate_media(color_scheme=scheme)
        where = f"{name} ({scheme})"
        problems += [f"{where}: {scroll} px wide at {width} px" for width, scroll in overflow(page).items()]
        problems += [
            f"{where}: words broken at {w} px: {', '.join(b)}" for w, b in broken_words(page).items()
        ]
        for width in WIDTHS:
            problems += [f"{where} at {width} px: {v}" for v in axe_violations(page, width)]
    page.emulate_media(color_scheme="light")
    return problems
