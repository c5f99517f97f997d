"""Atom and RSS 2.0 feeds: one for the whole newsletter, one per section.

Readers re-show an entry whose id or date changes, so both come from stable
data only. Ids are RFC 4151 tag URIs made from the issue date and the item URL,
never from file names, mtimes or positions. ``updated`` comes from the feed
state: an entry keeps its time until its content changes, so rebuilding
unchanged issues (after a ``git checkout`` reset every mtime, say) produces
byte-identical files, and :func:`~digest.fsutil.write_changed_files` then writes nothing.

The stages are pure until the last: :func:`collect_feeds` turns issues into
:class:`Feed` values, :func:`stamp_feeds` gives each entry its ``updated`` from
the state, :func:`render_outputs` renders every feed in every format (the
sections x formats table) plus the index page, OPML list and XSLT stylesheet,
and :func:`~digest.fsutil.write_changed_files` writes the files that changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from digest.config import Config
from digest.errors import StateError
from digest.fsutil import read_json, set_aside, write_changed_files, write_json
from digest.i18n import join_title
from digest.newsletter.markup import (
    absolute_url,
    absolutize_links,
    html_to_text,
    sanitize_html,
    strip_xml_illegal,
)
from digest.newsletter.model import Issue, Item, Section
from digest.templating import render_template

__all__ = [
    "FORMATS",
    "Entry",
    "Feed",
    "FeedBuild",
    "FeedFormat",
    "FeedState",
    "build_feeds",
    "collect_feeds",
    "describe",
    "feeds_base_url",
    "issue_html",
    "load_feed_state",
    "permalink",
    "plain_text",
    "render_outputs",
    "stamp_feeds",
    "summary_html",
]

STATE_FILE = "feeds.json"
STYLESHEET = "feed.xsl"
STYLESHEET_TEMPLATE = "feed.xsl.j2"
WHOLE = "all"


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


@dataclass(frozen=True)
class FeedFormat:
    """One output format: how a feed's file is named and rendered."""

    name: str
    media_type: str
    suffix: str
    render: Callable[[Any], bytes]

    def filename(self, key: str) -> str:
        return self.suffix if key == WHOLE else f"{key}.{self.suffix}"


FORMATS: tuple[FeedFormat, ...] = (
    FeedFormat("atom", "application/atom+xml", "atom.xml", lambda fg: fg.atom_str(pretty=True)),
    FeedFormat("rss", "application/rss+xml", "rss.xml", lambda fg: fg.rss_str(pretty=True)),
)


@dataclass(frozen=True)
class FeedState:
    """What the feeds remember between builds: each entry's content digest and ``updated``."""

    entries: Mapping[str, tuple[str, str]]

    def save(self, state_dir: Path) -> bool:
        entries = {k: {"digest": d, "updated": u} for k, (d, u) in sorted(self.entries.items())}
        return write_json(state_dir / STATE_FILE, {"version": 1, "entries": entries})


def load_feed_state(state_dir: Path) -> tuple[FeedState, str | None]:
    """The feed state, and a one-line warning when ``feeds.json`` could not be used.

    It only remembers each entry's ``updated``, so a corrupt or wrong-shaped file
    never stops a run: it is renamed ``feeds.json.corrupt-<time>`` (kept for a
    look) and the state starts afresh, which moves no entry's id and at worst
    resets an edited entry's ``updated`` to its issue date.
    """
    path = state_dir / STATE_FILE
    try:
        data = read_json(path, what="the feed state")
        if data is None:
            return FeedState({}), None
        entries = data.get("entries") if isinstance(data, dict) else None
        if isinstance(entries, dict) and all(_valid(v) for v in entries.values()):
            return FeedState({str(k): (v["digest"], v["updated"]) for k, v in entries.items()}), None
        problem = f"{path} is not a feed state file"
    except StateError as exc:
        problem = str(exc)
    try:
        aside = set_aside(path)
    except OSError as exc:
        raise StateError(f"{problem}, and cannot be set aside: {exc.strerror or exc}", path=path) from None
    return FeedState({}), f"{problem}; set aside as {aside.name}, the feed state is rebuilt"


def _valid(value: object) -> bool:
    if not (
        isinstance(value, dict)
        and isinstance(value.get("digest"), str)
        and isinstance(value.get("updated"), str)
    ):
        return False
    try:
        return dt.datetime.fromisoformat(value["updated"]).tzinfo is not None
    except ValueError:
        return False


# -- stage 1: issues to feeds -------------------------------------------------------------------


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
    recent = _one_per_date(issues)[: config.feeds.limit]
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


def _one_per_date(issues: Sequence[Issue]) -> list[Issue]:
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
    from digest.feeds.archive import online_url

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
    from digest.feeds.archive import online_url

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
    rendered = render_template(
        "issue.html.j2",
        language=config.site.language,
        issue=issue,
        intro=_markup(issue.intro_html),
        warmup=[_markup(h) for h in issue.warmup_html],
        preamble=[_markup(p.html) for p in issue.preamble],
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


# -- stage 2: updated times from the state ------------------------------------------------------


def stamp_feeds(feeds: Sequence[Feed], state: FeedState, now: dt.datetime) -> tuple[list[Feed], FeedState]:
    """Give every entry its ``updated``: unchanged content keeps its time, a change takes ``now``.

    A new entry starts at its ``published`` time, so a first build over an archive
    gives each issue its own date rather than the build time.
    """
    now = now.replace(microsecond=0)
    remembered = dict(state.entries)
    stamped: list[Feed] = []
    for feed in feeds:
        entries = []
        for entry in feed.entries:
            key = f"{feed.key} {entry.id}"  # one URL may sit in two sections of an issue
            known = remembered.get(key)
            if known and known[0] == entry.digest:
                updated = dt.datetime.fromisoformat(known[1])
            elif known:
                updated = max(now.astimezone(entry.published.tzinfo), entry.published)
            else:
                updated = entry.published
            remembered[key] = (entry.digest, updated.isoformat())
            entries.append(dataclasses.replace(entry, updated=updated))
        stamped.append(dataclasses.replace(feed, entries=tuple(entries)))
    return stamped, FeedState(remembered)


# -- stage 3: render every feed in every format -------------------------------------------------


def render_outputs(feeds: Sequence[Feed], config: Config) -> dict[str, bytes]:
    """File name -> bytes for every feed in every format, the index page, the OPML list and the XSLT."""
    outputs: dict[str, bytes] = {}
    for feed in feeds:
        for fmt in FORMATS:
            outputs[fmt.filename(feed.key)] = _render(feed, fmt, config)
    listed = [feed for feed in feeds if feed.entries or feed.key == WHOLE]  # an empty feed is not offered
    outputs["index.html"] = _index_page(listed, config).encode("utf-8")
    outputs["feeds.opml"] = _opml(listed, config)
    if config.feeds.stylesheet:
        outputs[STYLESHEET] = render_template(STYLESHEET_TEMPLATE, site=config.site).encode("utf-8")
    return outputs


def _render(feed: Feed, fmt: FeedFormat, config: Config) -> bytes:
    from feedgen.feed import FeedGenerator

    base = feeds_base_url(config)
    site = config.site
    fg = FeedGenerator()
    fg.id(base + fmt.filename(feed.key))
    fg.title(strip_xml_illegal(feed.title))
    fg.subtitle(strip_xml_illegal(feed.subtitle) or strip_xml_illegal(feed.title) or feed.key)
    fg.author({"name": site.author or site.title, **({"email": site.email} if site.email else {})})
    fg.link(href=base + fmt.filename(feed.key), rel="self", type=fmt.media_type)
    fg.link(href=site.base_url, rel="alternate", type="text/html")  # RSS <link> takes the last one
    fg.language(site.language)
    fg.generator("digest", uri="https://example.org/digest")
    fg.updated(feed.updated)
    fg.lastBuildDate(feed.updated)
    for entry in feed.entries:
        fe = fg.add_entry(order="append")
        fe.id(entry.id)
        fe.guid(entry.id, permalink=False)
        fe.title(entry.title)
        # One link only: feedgen 1.0 drops rel= on entry links, so a second link would
        # read as another alternate. The way back to the issue is in the content.
        fe.link(href=entry.link, rel="alternate", type="text/html")
        fe.published(entry.published)
        fe.updated(entry.updated or entry.published)
        fe.author({"name": site.author or site.title})
        fe.content(entry.content_html, type="html")  # sanitised in _entry; escaped, never CDATA
        # Atom <summary> and RSS <description>: HTML, from the same sanitiser as the content.
        fe.summary(summary_html(entry.summary or _plain_summary(entry.content_html)), type="html")
        for term in entry.categories:
            fe.category(term=term)
    return _with_stylesheet(fmt.render(fg), config)


def _plain_summary(content_html: str, limit: int = 280) -> str:
    text = " ".join(html_to_text(content_html).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_stylesheet(xml: bytes, config: Config) -> bytes:
    """feedgen has no hook for ``<?xml-stylesheet?>``: insert it after the XML declaration."""
    if not config.feeds.stylesheet:
        return xml
    declaration_end = xml.index(b"?>") + 2
    pi = f'\n<?xml-stylesheet type="text/xsl" href="{STYLESHEET}"?>'.encode()
    return xml[:declaration_end] + pi + xml[declaration_end:]


def _index_page(feeds: Sequence[Feed], config: Config) -> str:
    base = feeds_base_url(config)
    rows = [
        {
            "key": feed.key,
            "title": feed.title,
            "entries": len(feed.entries),
            "links": [(fmt.name, fmt.media_type, fmt.filename(feed.key)) for fmt in FORMATS],
        }
        for feed in feeds
    ]
    from digest.feeds.archive import subscribe_url

    subscribe = subscribe_url(config)
    return render_template("feeds_index.html.j2", site=config.site, rows=rows, base=base, subscribe=subscribe)


def _opml(feeds: Sequence[Feed], config: Config) -> bytes:
    base = feeds_base_url(config)
    atom = FORMATS[0]
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = config.site.title
    body = ElementTree.SubElement(root, "body")
    group = ElementTree.SubElement(body, "outline", text=config.site.title, title=config.site.title)
    for feed in feeds:
        ElementTree.SubElement(
            group,
            "outline",
            type="rss",
            text=feed.title,
            title=feed.title,
            xmlUrl=base + atom.filename(feed.key),
            htmlUrl=config.site.base_url,
        )
    ElementTree.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8") + b"\n"


# -- stage 4: write -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedBuild:
    """What a build did: files written, how many feeds and entries."""

    written: tuple[Path, ...]
    feeds: int
    entries: int
    warning: str | None = None  # feeds.json could not be used: set aside and rebuilt


def build_feeds(issues: Sequence[Issue], config: Config, now: dt.datetime) -> FeedBuild:
    """collect -> stamp -> render -> write, with the feed state loaded and saved around it."""
    from digest.feeds.archive import archive_outputs

    state, warning = load_feed_state(config.paths.state)
    feeds, new_state = stamp_feeds(collect_feeds(issues, config), state, now)
    outputs = {**render_outputs(feeds, config), **archive_outputs(feeds, issues, config)}
    written = write_changed_files(outputs, config.paths.feeds)
    new_state.save(config.paths.state)
    return FeedBuild(tuple(written), len(feeds), sum(len(f.entries) for f in feeds), warning)


def describe(build: FeedBuild) -> str:
    changed = f"{len(build.written)} file(s) written" if build.written else "nothing changed"
    return f"feeds: {build.feeds} feeds, {build.entries} entries; {changed}"
