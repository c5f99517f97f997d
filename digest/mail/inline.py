"""The email for readers: CSS moved into ``style`` attributes, and what the masthead and foot add.

Clients that strip ``<style>`` must keep the look.

mjml-python compiles ``<mj-style inline="inline">`` into a plain ``<style>``
block and inlines nothing, and Gmail's apps with non-Google accounts drop every
``<style>``: titles, sources and links then lost their styling. css-inline (the
Rust inliner, a maintained library) copies each rule onto the elements it
matches; ``@media`` rules (dark mode, MJML's column widths) cannot be inlined
and stay in ``<style>``, where the clients that honour them read them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from digest.errors import TemplateError

__all__ = ["TOC_MIN_ITEMS", "inline_css", "reader_context"]


@functools.cache
def _inliner() -> Any:
    import css_inline

    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    """``html`` with every non-``@`` rule of its ``<style>`` blocks written into ``style`` attributes."""
    import css_inline

    try:
        return str(_inliner().inline(html))
    except css_inline.InlineError as exc:
        raise TemplateError(f"the compiled email's CSS cannot be inlined: {exc}") from None


# An issue this long gets a table of sections with jump links at the top.
TOC_MIN_ITEMS = 10
TOC_MIN_SECTIONS = 2


def reader_context(issue: Any, config: Any, sections: Sequence[Any]) -> dict[str, Any]:
    """What the templates add for readers: the masthead, the table of sections, the theme, the links.

    The masthead names the newsletter, the issue's number and the date once, over
    the headline. The title ("嵌入式AI简报 (2026-11-01)") says the same again and
    is already the subject, so it is the heading only for an issue without a headline;
    what the heading already says (the name, the number, the date) is left out of the line above it.
    """
    from digest.feeds.entries import archive_index_url, subscribe_url
    from digest.i18n import format_date, gettext_for

    theme = config.theme
    name = theme.name or config.site.title
    heading = issue.headline or issue.title
    _ = gettext_for(config.site.language)
    masthead = [] if name in heading or config.site.title in heading else [name]
    if issue.number is not None and not re.search(rf"(?<!\d){issue.number}(?!\d)", heading):
        masthead.append(_("No. %(number)s", number=issue.number))
    if issue.date.isoformat() not in heading:  # the date is always said once, above or in the heading
        masthead.append(format_date(issue.date, config.site.language))
    items = sum(len(s.items) for s in sections)
    return {
        "theme": theme,
        "masthead_name": name,
        "masthead_line": masthead,
        "header_line": " · ".join(masthead),
        "heading": heading,
        "toc": len(sections) >= TOC_MIN_SECTIONS and items >= TOC_MIN_ITEMS,
        "subscribe_url": subscribe_url(config),
        "archive_url": archive_index_url(config),
        "address_lines": [line.strip() for line in theme.address.splitlines() if line.strip()],
    }
