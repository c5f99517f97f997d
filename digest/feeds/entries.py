"""What goes into the feeds: issues and their items as feed entries, and where each is read online.

Readers re-show an entry whose id or date changes, so both come from stable
data only. Ids are RFC 4151 tag URIs made from the issue date and the item URL,
never from file names, mtimes or positions. Pure functions: :func:`collect_feeds`
turns issues into :class:`Feed` values that the feed files (:mod:`digest.feeds.build`)
and the archive pages (:mod:`digest.feeds.archive`) are both made from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from digest.config import Config
from digest.i18n import join_title
from digest.newsletter.discover import issue_name
from digest.newsletter.markup import (
    absolute_url,
    absolutize_links,
    html_to_text,
    sanitize_html,
    strip_xml_illegal,
)
from digest.newsletter.model import Issue, Item, Prose, Section
from digest.templating import render_template

__all__ = [
    "ARCHIVE_DIR",
    "WHOLE",
    "Entry",
    "Feed",
    "archive_index_url",
    "archive_page",
    "archive_url",
    "collect_feeds",
    "feeds_base_url",
    "issue_html",
    "one_per_date",
    "online_url",
    "page_context",
    "page_href",
    "permalink",
    "plain_text",
    "sections_with_entries",
    "subscribe_url",
    "summary_html",
    "tag_authority",
    "warmup_lead",
]


WHOLE = "all"
ARCHIVE_DIR = "archive"


@dataclass(frozen=True)
class Entry:
    """One feed entry: an issue (whole feed) or an item (section feed)."""

    id: str
    title: str
    link: str
    published: dt.datetime
    content_html: str
    summary: str
    categories: tuple[str, ...]
    digest: str  # hash of everything a reader sees; a change moves ``updated``
    updated: dt.datetime | None = None


@dataclass(frozen=True)
class Feed:
    """A feed before rendering: ``key`` is ``all`` or a section slug."""

    key: str
    title: str
    subtitle: str
    entries: tuple[Entry, ...]

    @property
    def updated(self) -> dt.datetime:
        stamps = [e.updated or e.published for e in self.entries]
        return max(stamps) if stamps else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def permalink(config: Config, issue: Issue) -> str:
    """Where the issue's relative links point from: ``[site] permalink``, else ``{base_url}{stem}.html``.

    Readers are sent to :func:`digest.feeds.archive.online_url`, the archive page unless this is set.
    """
    return (config.site.permalink or "{base_url}{stem}.html").format(
        base_url=config.site.base_url,
        stem=issue.stem,
        date=issue.date.isoformat(),
        year=f"{issue.date.year:04d}",
        month=f"{issue.date.month:02d}",
        day=f"{issue.date.day:02d}",
    )


def feeds_base_url(config: Config) -> str:
    return f"{config.site.base_url}feeds/"


def tag_authority(config: Config) -> str:
    return config.feeds.tag_authority or (urlsplit(config.site.base_url).hostname or "localhost")


def collect_feeds(issues: Sequence[Issue], config: Config) -> list[Feed]:
    """The whole-newsletter feed and one feed per section, newest issue first, ``limit`` issues each.

    ``issues`` must be the published issues, newest first. Every section slug
    ever seen keeps its feed, even when the newest issues lack that section.
    """
    recent = one_per_date(issues)[: config.feeds.limit]
    links = {issue.key: permalink(config, issue) for issue in recent}
    authority = tag_authority(config)
    whole = Feed(
        key=WHOLE,
        title=config.site.title,
        subtitle=config.site.description or config.site.title,
        entries=tuple(
            _issue_entry(issue, f"tag:{authority},{issue.key}:issue", links[issue.key], config)
            for issue in recent
        ),
    )
    names = _section_names(issues, config)
    feeds = [whole]
    for slug, name in names.items():
        entries: list[Entry] = []
        for issue in recent:
            seen: set[str] = set()
            for section in issue.sections:
                if section.slug == slug:
                    entries.extend(
                        _item_entry(item, issue, links[issue.key], name, seen, authority, config)
                        for item in section.items
                    )
        feeds.append(
            Feed(key=slug, title=f"{config.site.title} · {name}", subtitle=name, entries=tuple(entries))
        )
    return feeds


def one_per_date(issues: Sequence[Issue]) -> list[Issue]:
    """An issue is known by its date: of two files with one date (a copy), the feeds carry one.

    ``digest run`` reports such files; the one kept is the first in the given order
    (newest first, then by file name), so the choice does not change between builds.
    """
    kept: dict[str, Issue] = {}
    for issue in issues:
        kept.setdefault(issue.key, issue)
    return list(kept.values())


def _section_names(issues: Iterable[Issue], config: Config) -> dict[str, str]:
    """slug -> section name, for the configured sections and every section in the issues."""
    names = config.feeds.section_names
    for issue in issues:
        for section in issue.sections:
            if section.items:  # a prose section (an essay, a cover picture) has no entries to feed
                names.setdefault(section.slug, section.name or section.slug)
    return names


def _issue_entry(issue: Issue, ident: str, link: str, config: Config) -> Entry:

    content = issue_html(issue, config, link)
    return _entry(
        id=ident,
        title=join_title(issue.title, issue.headline, config.site.language) or issue.key,
        link=online_url(config, issue),
        published=issue.published,
        content_html=content,
        summary=html_to_text(issue.intro_html),
        categories=tuple(section.name for section in issue.sections if section.items),
    )


def _item_entry(
    item: Item,
    issue: Issue,
    issue_link: str,
    section_name: str,
    seen: set[str],
    authority: str,
    config: Config,
) -> Entry:

    key = item.url or item.href or item.title
    if key in seen:  # the same link twice in one section: tell the two apart by title
        key = f"{key}\n{item.title}"
    seen.add(key)
    ident = f"tag:{authority},{issue.date.isoformat()}:item:{hashlib.sha256(key.encode()).hexdigest()[:24]}"
    content = render_template(
        "feed_item.html.j2",
        language=config.site.language,
        item=item,
        issue=issue,
        issue_title=join_title(issue.title, issue.headline, config.site.language),
        issue_link=online_url(config, issue),
        summary_html=_markup(item.summary_html),
    )
    return _entry(
        id=ident,
        title=item.title or item.href or section_name,
        link=absolute_url(item.href, issue_link) or issue_link,
        published=issue.published,
        content_html=absolutize_links(sanitize_html(content), issue_link),
        summary="",
        categories=tuple(c for c in (item.subsection, item.source, *item.labels) if c),
    )


def _entry(**fields: Any) -> Entry:
    fields["title"] = plain_text(fields["title"])
    fields["summary"] = strip_xml_illegal(fields["summary"])
    fields["categories"] = tuple(plain_text(c) for c in fields["categories"])
    seen = {k: fields[k] for k in ("title", "link", "content_html", "summary", "categories")}
    seen["published"] = fields["published"].isoformat()
    fields["digest"] = hashlib.sha256(
        json.dumps(seen, ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()
    return Entry(**fields)


def plain_text(text: str) -> str:
    """A text field (a title, a category) no reader can take for markup.

    RSS says nothing about whether ``<title>`` holds text or HTML, and readers do
    both; "<" (which opens every tag) becomes a look-alike quote, so no tag survives
    either reading.
    """
    return strip_xml_illegal(text).replace("<", "\u2039")


def summary_html(text: str) -> str:
    """A plain summary as HTML: escaped, then through the one sanitiser every HTML field uses.

    RSS ``<description>`` is HTML to every reader, so plain text that merely looks
    like a tag (``<img onerror=...>`` from inline code) must arrive escaped.
    """
    return sanitize_html(html.escape(text, quote=False))


def issue_html(issue: Issue, config: Config, link: str | None = None) -> str:
    """The whole issue as sanitised HTML with links made absolute against ``link`` (its permalink)."""
    link = link or permalink(config, issue)
    heading, preamble = warmup_lead(issue)
    rendered = render_template(
        "issue.html.j2",
        language=config.site.language,
        issue=issue,
        intro=_markup(issue.intro_html),
        warmup_heading=heading,
        warmup=[_markup(h) for h in issue.warmup_html],
        preamble=[_markup(p.html) for p in preamble],
        sections=[(s, _parts(s)) for s in issue.sections if s.items or s.prose],
    )
    return absolutize_links(sanitize_html(rendered), link)


def _parts(section: Section) -> list[tuple[str, list[Any], list[tuple[Item, Any]]]]:
    """A section's top and subsections: (name, prose HTML, [(item, summary HTML)])."""
    return [
        (part.name, [_markup(p.html) for p in part.prose], [(i, _markup(i.summary_html)) for i in part.items])
        for part in section.parts
        if part.prose or part.items
    ]


def _markup(fragment: str) -> Any:
    from markupsafe import Markup

    return Markup(fragment)  # already sanitised by digest.newsletter.markup


def archive_page(config: Config, issue: Issue) -> str:
    """The file name of an issue's archive page: its name in the issues folder, one level.

    ``2026-05-01.html`` for a file at the top, ``2026-issue-6.html`` for
    ``2026/issue-6.md``: two years' ``01.md`` never share a page. Links to it
    go through :func:`page_href` (a name may hold ``#``, ``?`` or spaces).
    """
    return issue_name(config.paths.issues, issue.path).replace("/", "-") + ".html"


def page_href(name: str) -> str:
    """A relative link to a page named ``name``, percent-encoded."""
    return quote(name)


def archive_url(config: Config, issue: Issue) -> str:
    """Where the archive page of an issue is published (under the feeds' address)."""
    return f"{config.site.base_url}feeds/{ARCHIVE_DIR}/{page_href(archive_page(config, issue))}"


def sections_with_entries(issues: Sequence[Issue], config: Config) -> frozenset[str]:
    """The slugs of the section feeds that have entries now (``issues``: the published ones)."""
    return frozenset(feed.key for feed in collect_feeds(issues, config)[1:] if feed.entries)


def online_url(config: Config, issue: Issue) -> str:
    """Where a reader reads the issue online: ``[site] permalink`` when set, else its archive page."""
    if config.site.permalink:
        return permalink(config, issue)
    return archive_url(config, issue)


def archive_index_url(config: Config) -> str:
    """The archive's front page: every issue, and the search over them."""
    return f"{config.site.base_url}feeds/{ARCHIVE_DIR}/index.html"


def warmup_lead(issue: Issue) -> tuple[str, tuple[Prose, ...]]:
    """The warm-up heading in the issue's own words, and the preamble without it.

    The words leading into the warm-up bullets ("A few short notes:") are kept by
    the parser both as a note and as preamble prose; shown as the list's heading,
    they are left out of the preamble so no page says them twice. The heading is
    "" when the issue has none (the templates then use the catalog's).
    """
    own = str(getattr(issue, "warmup_heading", ""))  # a parser that reads the heading itself
    lead = own
    if not own and issue.warmup:
        lead = next((n for n in issue.notes if n.endswith((":", "："))), "")
    if not lead:
        return "", issue.preamble
    said = " ".join(lead.split())
    rest = tuple(p for p in issue.preamble if " ".join(html_to_text(p.html).split()) != said)
    return lead.rstrip(":：").strip(), rest


def page_context(config: Config, root: str) -> dict[str, Any]:
    """What every page for readers (the archive, the feeds index) is rendered with.

    ``root`` is the way from the page to the feeds directory ("", "../", "../../").
    """
    return {
        "site": config.site,
        "theme": config.theme,
        "root": root,
        "subscribe": subscribe_url(config),
        "address_lines": [line.strip() for line in config.theme.address.splitlines() if line.strip()],
    }


def subscribe_url(config: Config) -> str:
    """``digest serve``'s subscribe page, when ``[email] base_url`` says where it is."""
    return f"{config.email.base_url}subscribe" if config.email.base_url else ""
