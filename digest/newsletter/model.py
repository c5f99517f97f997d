"""The parsed newsletter: frozen dataclasses that every later stage reads.

Parsing produces an :class:`Issue`; feeds, email, preview and release read it and
never change it. Markdown is kept next to its sanitised HTML so each output can
pick the form it needs without parsing again.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from digest.i18n import N_, Phrase, gettext_for

__all__ = [
    "Field",
    "Finding",
    "Issue",
    "Item",
    "Link",
    "Part",
    "Prose",
    "Section",
    "Severity",
]


class Severity(StrEnum):
    """How bad a lint finding is, and so what the release guard does with the issue.

    ``fatal``: not an issue yet, neither fed nor mailed.
    ``error``: a reader would see something broken; fed, but mailed only when forced.
    ``warning``: worth a look; nothing is held back.
    """

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def word(self, language: str = "en") -> str:
        """The severity as the newsletter's language says it (``warning``, ``警告``)."""
        return gettext_for(language)(_WORDS[self])


_WIDE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_RANK = {Severity.FATAL: 0, Severity.ERROR: 1, Severity.WARNING: 2}
_WORDS = {Severity.FATAL: N_("fatal"), Severity.ERROR: N_("error"), Severity.WARNING: N_("warning")}


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding at one line of an issue file (line 0: the file as a whole).

    ``text`` is a message of the catalogs (marked with ``N_`` where the finding is
    made) and ``params`` fill its ``%(name)s`` placeholders, so each output can say
    it in the newsletter's language; ``message`` is the English, ``code`` never changes.
    """

    line: int
    code: str
    severity: Severity
    text: str
    params: tuple[tuple[str, object], ...] = ()

    @property
    def message(self) -> str:
        """The finding in English (the JSON output, errors and logs)."""
        return Phrase(self.text, self.params).english

    def says(self, language: str = "en") -> str:
        """The finding in the newsletter's language (its own words, from the catalog)."""
        return Phrase(self.text, self.params).says(language)

    def format(self, path: Path | str, language: str = "en") -> str:
        """``path:line: severity code: message``, in the newsletter's language (code as it is)."""
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.severity.word(language)} {self.code}: {self.says(language)}"


@dataclass(frozen=True, slots=True)
class Link:
    """An extra labelled link of an item (代码, 论文, [[报道原文]] ...)."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Field:
    """A labelled line of an item that is text, not a link (标题：the paper's own title)."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class Item:
    """One linked entry of a section, with its source, labels and 摘要 summary."""

    title: str
    url: str
    source: str
    labels: tuple[str, ...]
    summary: str
    summary_html: str
    links: tuple[Link, ...]
    fields: tuple[Field, ...]
    line: int
    subsection: str = ""  # the subsection heading the item stands under, if any

    @property
    def href(self) -> str:
        """Where the item's title should point: its URL, else its first extra link."""
        if self.url:
            return self.url
        return self.links[0].url if self.links else ""


@dataclass(frozen=True, slots=True)
class Prose:
    """A block that is not items (an essay, a cover picture, a quote of the week), kept as written.

    ``html`` is sanitised; ``subsection`` is the subsection heading it stands under, if any.
    """

    markdown: str
    html: str
    line: int
    subsection: str = ""


@dataclass(frozen=True, slots=True)
class Part:
    """A section's top (``name`` empty) or one of its subsections, with its prose and items."""

    name: str
    prose: tuple[Prose, ...]
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """A section (a heading at the issue's section level): its items, prose and subsections."""

    name: str
    slug: str
    items: tuple[Item, ...]
    line: int
    prose: tuple[Prose, ...] = ()
    subsections: tuple[str, ...] = ()

    @property
    def parts(self) -> tuple[Part, ...]:
        """The section's top, then each subsection in order: what templates show under the heading."""
        names = ("", *self.subsections)
        return tuple(
            Part(
                name,
                tuple(p for p in self.prose if p.subsection == name),
                tuple(i for i in self.items if i.subsection == name),
            )
            for name in names
        )


@dataclass(frozen=True)
class Issue:
    """One issue file, parsed.

    ``published`` is the issue date at midnight in the site's timezone unless the
    front matter gives a time. ``findings`` are the lint findings of the file.
    """

    path: Path
    stem: str
    date: dt.date
    published: dt.datetime
    title: str
    headline: str
    tagline: str
    intro: str
    intro_html: str
    warmup: tuple[str, ...]
    warmup_html: tuple[str, ...]
    sections: tuple[Section, ...]
    findings: tuple[Finding, ...]
    draft: bool = False
    notes: tuple[str, ...] = field(default=())
    number: int | None = None  # the issue's number (``Number:``, ``第 N 期``, ``#665``, ``issue-300``)
    preamble: tuple[Prose, ...] = ()  # prose before the first section, after the intro
    send_at: dt.datetime | None = None  # front matter ``send_at``: mail it no earlier than this
    left_out: tuple[
        Prose, ...
    ] = ()  # boilerplate left out by rule (back issues, a skipped section): markdown only

    @property
    def key(self) -> str:
        """The issue's identity for mailing: its date. Renaming the file never makes it a new issue."""
        return self.date.isoformat()

    @property
    def full_title(self) -> str:
        """The title with its headline, as feeds and subjects show it."""
        if not self.headline:
            return self.title
        wide = _WIDE.search(self.title)  # a CJK title takes the full-width colon
        return f"{self.title}{'：' if wide else ': '}{self.headline}"

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def has(self, severity: Severity) -> bool:
        return any(f.severity == severity for f in self.findings)
