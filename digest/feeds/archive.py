"""The archive: a static web page per published issue and an index of issues, beside the feeds.

So "view online" works with no other site: ``archive/<stem>.html`` holds the
same sanitised HTML as the issue's entry in the whole-newsletter feed, and
``archive/index.html`` lists the issues, newest first. A newsletter with a site
of its own points ``[site] permalink`` there and keeps these pages as a spare.
The pages are the feeds' HTML twins too: Chromium is retiring XSLT, so the
feeds index links them for readers whose browser no longer renders ``feed.xsl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from digest.config import Config
from digest.feeds.entries import ARCHIVE_DIR, issue_html, one_per_date
from digest.i18n import join_title
from digest.newsletter.model import Issue
from digest.templating import render_template

__all__ = ["archive_outputs"]


def archive_outputs(feeds: Sequence[Any], issues: Sequence[Issue], config: Config) -> dict[str, bytes]:
    """Name (under the feeds directory) -> bytes: a page per published issue, an index, one per section.

    ``issues`` are the published ones, newest first; each page's body is
    :func:`~digest.feeds.entries.issue_html`, the content of the issue's entry in the whole feed.
    Each section feed with entries gets its HTML twin, ``sections/<slug>.html``.
    """
    rows = []
    outputs: dict[str, bytes] = {}
    for issue in one_per_date(issues):  # an issue is known by its date: the feeds carry one of two copies
        title = join_title(issue.title, issue.headline, config.site.language)
        outputs[f"{ARCHIVE_DIR}/{issue.stem}.html"] = _page(
            "archive_issue.html.j2", config, issue=issue, title=title, content=issue_html(issue, config)
        )
        rows.append((f"{issue.stem}.html", title, issue.date))
    outputs[f"{ARCHIVE_DIR}/index.html"] = _page("archive_index.html.j2", config, rows=rows)
    for feed in feeds[1:]:
        if feed.entries:
            outputs[f"{ARCHIVE_DIR}/sections/{feed.key}.html"] = _page(
                "archive_section.html.j2", config, feed=feed, entries=[_shown(e) for e in feed.entries]
            )
    return outputs


def _shown(entry: Any) -> tuple[str, str, Any, Any]:
    from markupsafe import Markup

    return entry.title, entry.link, entry.published.date(), Markup(entry.content_html)  # sanitised


def _page(template: str, config: Config, **context: Any) -> bytes:
    from markupsafe import Markup

    if "content" in context:
        context["content"] = Markup(context["content"])  # sanitised by issue_html
    return render_template(template, site=config.site, **context).encode("utf-8")
