"""The reader's pages of ``digest serve`` beyond the token links: the subscribe form, the done page.

``GET /subscribe`` (and ``/``) is a plain HTML form (address, sections) that
posts to ``POST /subscribe``, today's double opt-in; it needs no JavaScript.
Sections with no entry in the feeds are listed as such rather than offered
as if a reader would get something from them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from digest.config import Config
from digest.errors import DigestError
from digest.i18n import gettext_for

__all__ = ["SectionOption", "SectionsWithEntries", "done_links", "section_options", "subscribe_form"]


@dataclass(frozen=True)
class SectionOption:
    """One checkbox of a sections form: ``empty`` when the feeds have no entry in it now."""

    slug: str
    name: str
    checked: bool
    empty: bool


class SectionsWithEntries:
    """The section slugs that have entries in the feeds, worked out at most once a minute.

    Reading every issue costs a parse; the answer changes only when an issue
    is published, so a page asked for many times a minute reads the issues once.
    """

    ttl = 60.0

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, frozenset[str]] | None = None

    def get(self) -> frozenset[str]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= self.ttl:
                self._cached = (now, self._read())
            return self._cached[1]

    def _read(self) -> frozenset[str]:
        from digest.feeds.entries import sections_with_entries
        from digest.newsletter.catalog import load_catalog, now_in
        from digest.release.rules import published_issues

        try:
            issues = published_issues(load_catalog(self.config).issues, now_in(self.config))
        except DigestError:  # no issues to read here (serve on another machine): mark nothing
            return self.config.feeds.slugs
        return sections_with_entries(issues, self.config)


def section_options(
    names: dict[str, str], chosen: Iterable[str], with_entries: frozenset[str]
) -> list[SectionOption]:
    """The checkboxes of a sections form, in the configured order."""
    picked = set(chosen)
    return [
        SectionOption(slug, name, slug in picked, slug not in with_entries) for slug, name in names.items()
    ]


def subscribe_form(config: Config, with_entries: frozenset[str]) -> tuple[str, str, dict[str, Any]]:
    """(heading, message, form) of ``GET /subscribe``."""
    _ = gettext_for(config.site.language)
    title = config.site.title
    return (
        _("Subscribe to %(title)s", title=title),
        _(
            "Enter your address; we mail you a link to confirm. "
            "Choose sections if you want only some; choose none to get them all."
        ),
        {
            "button": _("Subscribe"),
            "email": True,
            "action": "subscribe",
            "sections": section_options(config.feeds.section_names, (), with_entries),
        },
    )


def done_links(config: Config, preferences_url: str) -> dict[str, Any]:
    """What the page after unsubscribing offers: the way back (the preferences) and the site.

    Saving the preferences of an unsubscribed address subscribes it again: the
    signed link proves the address, so no second confirmation is needed.
    """
    _ = gettext_for(config.site.language)
    return {
        "links": [
            (preferences_url, _("Changed your mind? Choose sections and subscribe again")),
            (config.site.base_url, _("Back to %(title)s", title=config.site.title)),
        ]
    }
