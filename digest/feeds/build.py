"""Atom and RSS 2.0 feeds: one for the whole newsletter, one per section.

Entries come from :mod:`digest.feeds.entries`; ``updated`` comes from the feed
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from digest.config import Config
from digest.errors import StateError
from digest.feeds.archive import archive_outputs
from digest.feeds.entries import (
    WHOLE,
    Feed,
    collect_feeds,
    feeds_base_url,
    page_context,
    summary_html,
)
from digest.fsutil import read_json, set_aside, write_changed_files, write_json
from digest.newsletter.markup import (
    html_to_text,
    strip_xml_illegal,
)
from digest.newsletter.model import Issue
from digest.templating import newsletter_templates, render_template

__all__ = [
    "FORMATS",
    "FeedBuild",
    "FeedFormat",
    "FeedState",
    "build_feeds",
    "describe",
    "load_feed_state",
    "render_outputs",
    "stamp_feeds",
]


STATE_FILE = "feeds.json"
STYLESHEET = "feed.xsl"
STYLESHEET_TEMPLATE = "feed.xsl.j2"


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
        outputs[STYLESHEET] = render_template(
            STYLESHEET_TEMPLATE, site=config.site, theme=config.theme
        ).encode("utf-8")
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
    rows = [
        {
            "key": feed.key,
            "title": feed.title,
            "name": feed.subtitle if feed.key != WHOLE else _("All issues", config),
            "entries": len(feed.entries),
            "links": [(fmt.name, fmt.media_type, fmt.filename(feed.key)) for fmt in FORMATS],
        }
        for feed in feeds
    ]
    return render_template(
        "feeds_index.html.j2", newsletter_templates(config), **page_context(config, ""), rows=rows
    )


def _(message: str, config: Config) -> str:
    from digest.i18n import gettext_for

    return gettext_for(config.site.language)(message)


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
    state, warning = load_feed_state(config.paths.state)
    feeds, new_state = stamp_feeds(collect_feeds(issues, config), state, now)
    outputs = {**render_outputs(feeds, config), **archive_outputs(feeds, issues, config)}
    written = write_changed_files(outputs, config.paths.feeds)
    new_state.save(config.paths.state)
    return FeedBuild(tuple(written), len(feeds), sum(len(f.entries) for f in feeds), warning)


def describe(build: FeedBuild) -> str:
    changed = f"{len(build.written)} file(s) written" if build.written else "nothing changed"
    return f"feeds: {build.feeds} feeds, {build.entries} entries; {changed}"
