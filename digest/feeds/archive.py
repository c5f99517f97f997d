"""The archive: a static web page per published issue, an index of issues and a search, beside the feeds.

So "view online" works with no other site: ``archive/<name>.html`` holds the
same sanitised HTML as the issue's entry in the whole-newsletter feed, with the
issue's sections as a table of contents and links to the issues before and
after; ``archive/index.html`` lists the issues, newest first, and searches them.
The search is two static files (``search-index.js``, the issues' titles,
sections and item titles, and ``search.js``, a few lines that filter them), so it
works from any static server and from ``file://``. A newsletter with a site of
its own points ``[site] permalink`` there and keeps these pages as a spare. The
pages are the feeds' HTML twins too: Chromium is retiring XSLT, so the feeds
index links them for readers whose browser no longer renders ``feed.xsl``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from digest.config import Config
from digest.feeds.entries import ARCHIVE_DIR, archive_page, issue_html, one_per_date, page_context, page_href
from digest.i18n import format_date, join_title
from digest.newsletter.model import Issue
from digest.templating import newsletter_templates, render_template

__all__ = ["SEARCH_INDEX", "archive_outputs", "search_index"]

SEARCH_INDEX = "search-index.js"
SEARCH_SCRIPT = "search.js"


def archive_outputs(feeds: Sequence[Any], issues: Sequence[Issue], config: Config) -> dict[str, bytes]:
    """Name (under the feeds directory) -> bytes: a page per published issue, an index, one per section.

    ``issues`` are the published ones, newest first; each page's body is
    :func:`~digest.feeds.entries.issue_html`, the content of the issue's entry in the whole feed.
    Each section feed with entries gets its HTML twin, ``sections/<slug>.html``.
    """
    shown = one_per_date(issues)  # an issue is known by its date: the feeds carry one of two copies
    titles = [join_title(issue.title, issue.headline, config.site.language) for issue in shown]
    pages = [archive_page(config, issue) for issue in shown]
    links = [(page_href(page), title) for page, title in zip(pages, titles, strict=True)]
    outputs: dict[str, bytes] = {}
    anchored: dict[str, frozenset[str]] = {}
    for n, (issue, title) in enumerate(zip(shown, titles, strict=True)):
        content, toc = _with_anchors(issue_html(issue, config), issue)
        anchored[pages[n]] = frozenset(anchor for anchor, _, _ in toc)
        outputs[f"{ARCHIVE_DIR}/{pages[n]}"] = _page(
            "archive_issue.html.j2",
            config,
            "../",
            issue=issue,
            title=title,
            content=content,
            toc=toc,
            newer=links[n - 1] if n > 0 else None,
            older=links[n + 1] if n + 1 < len(links) else None,
        )
    section_pages = [feed for feed in feeds[1:] if feed.entries]
    rows = [(href, title, issue.date) for (href, title), issue in zip(links, shown, strict=True)]
    sections = [(f"sections/{feed.key}.html", feed.subtitle, len(feed.entries)) for feed in section_pages]
    outputs[f"{ARCHIVE_DIR}/index.html"] = _page(
        "archive_index.html.j2", config, "../", rows=rows, sections=sections
    )
    for feed in section_pages:
        outputs[f"{ARCHIVE_DIR}/sections/{feed.key}.html"] = _page(
            "archive_section.html.j2", config, "../../", feed=feed, entries=[_shown(e) for e in feed.entries]
        )
    outputs[f"{ARCHIVE_DIR}/{SEARCH_INDEX}"] = search_index(shown, config, anchored)
    outputs[f"{ARCHIVE_DIR}/{SEARCH_SCRIPT}"] = render_template(
        "search.js.j2", newsletter_templates(config), autoescape=False, language=config.site.language
    ).encode("utf-8")
    return outputs


def _sections_shown(issue: Issue) -> list[Any]:
    """The sections an issue's page shows (as :func:`issue_html` does), each with its anchor."""
    return [s for s in issue.sections if s.items or s.prose]


def _with_anchors(content: str, issue: Issue) -> tuple[str, list[tuple[str, str, int]]]:
    """The page's HTML with an id on each section heading, and the table of contents: (id, name, items).

    The ids are digest's own (``s1``, ``s2``...), added after sanitising, on the
    ``<h3>`` each section starts with, found in order.
    """
    toc = []
    at = 0
    for n, section in enumerate(_sections_shown(issue), 1):
        heading = f"<h3>{html.escape(section.name, quote=False)}</h3>"
        found = content.find(heading, at)
        if found < 0:
            continue
        anchor = f"s{n}"
        content = f'{content[:found]}<h3 id="{anchor}">{content[found + 4 :]}'
        at = found + len(heading)
        toc.append((anchor, section.name, len(section.items)))
    return content, toc


def search_index(
    issues: Sequence[Issue], config: Config, anchored: Mapping[str, frozenset[str]] | None = None
) -> bytes:
    """``search-index.js``: every issue's page, title and date, and its items' titles by section.

    A script that sets ``window.digestSearchIndex`` rather than JSON to fetch:
    browsers load a script from ``file://``, where they refuse ``fetch``. Each item
    names its section's anchor on the issue's page (``anchored``: the anchors each
    page has, by page; "" sends the reader to the top of a page whose heading was not found).
    """
    entries = []
    for issue in issues:
        numbered = {id(s): f"s{n}" for n, s in enumerate(_sections_shown(issue), 1)}
        page = archive_page(config, issue)
        has = anchored.get(page, frozenset()) if anchored is not None else frozenset(numbered.values())
        anchors = {key: anchor if anchor in has else "" for key, anchor in numbered.items()}
        entries.append(
            {
                "url": page_href(page),
                "title": join_title(issue.title, issue.headline, config.site.language),
                "date": format_date(issue.date, config.site.language),
                "items": [
                    {
                        "title": _plain(item.title or item.href),
                        "section": section.name,
                        "anchor": anchors[id(section)],
                    }
                    for section in issue.sections
                    if section.items
                    for item in section.items
                ],
            }
        )
    data = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
    return f"window.digestSearchIndex = {data};\n".encode()


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _shown(entry: Any) -> tuple[str, str, Any, Any]:
    from markupsafe import Markup

    return entry.title, entry.link, entry.published.date(), Markup(entry.content_html)  # sanitised


def _page(template: str, config: Config, root: str, **context: Any) -> bytes:
    from markupsafe import Markup

    if "content" in context:
        context["content"] = Markup(context["content"])  # sanitised by issue_html
    return render_template(
        template, newsletter_templates(config), **page_context(config, root), **context
    ).encode("utf-8")
