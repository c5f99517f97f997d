"""The email digest: jinja2 -> MJML -> responsive HTML, plus the plain-text part.

MJML compiles once per *variant* (the set of sections a subscriber chose), not
once per subscriber: per-subscriber values (address, unsubscribe and preference
links) are placeholders in the compiled output, filled in by :meth:`Fill.fill`.
So 10,000 personalised messages cost one compile per variant and 10,000 string
joins.

Gmail clips messages over 102 KB, and Chinese text takes 3 bytes a character.
The HTML is minified; when it is still over ``[email] max_html_bytes``, summaries
are shortened step by step (with a link to the full issue) until it fits.
"""

from __future__ import annotations

import base64
import functools
import html as htmlmod
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digest.config import Config
from digest.errors import TemplateError
from digest.i18n import N_, gettext_for, join_title
from digest.mail.inline import inline_css, reader_context
from digest.newsletter.markup import absolute_url, absolutize_links, html_to_text
from digest.newsletter.model import Finding, Issue, Item, Link, Section, Severity
from digest.templating import newsletter_templates, render_template

__all__ = [
    "FIELD_NAMES",
    "DigestRenderer",
    "Fill",
    "RenderedDigest",
    "base64_line_bytes",
    "base64_lines",
    "render_subject",
    "size_finding",
    "warmup_heading",
]

FIELD_NAMES = ("name", "email", "unsubscribe_url", "preferences_url")
SUMMARY_LIMITS: tuple[int | None, ...] = (None, 600, 300, 150, 60, 0)
# Room kept for the per-subscriber values when checking the size budget.
FIELD_ALLOWANCE = 1200
_PLACEHOLDER = "%%DIGEST-{}%%"
_PLACEHOLDER_RE = re.compile(r"%%DIGEST-([a-z_]+)%%")
_PLACEHOLDERS = {name: _PLACEHOLDER.format(name) for name in FIELD_NAMES}


@dataclass(frozen=True)
class Fill:
    """Rendered text with holes: ``parts`` around the field ``names`` that go between them."""

    parts: tuple[str, ...]
    names: tuple[str, ...]
    escape: bool

    @classmethod
    def split(cls, text: str, *, escape: bool) -> Fill:
        pieces = _PLACEHOLDER_RE.split(text)
        return cls(tuple(pieces[0::2]), tuple(pieces[1::2]), escape)

    def fill(self, values: Mapping[str, str]) -> str:
        return self.parts[0] + self._rest(values)

    def _rest(self, values: Mapping[str, str]) -> str:
        out = []
        for name, part in zip(self.names, self.parts[1:], strict=True):
            value = values.get(name, "")
            out.append(htmlmod.escape(value, quote=True) if self.escape else value)
            out.append(part)
        return "".join(out)

    @functools.cached_property
    def _base64_head(self) -> tuple[bytes, bytes]:
        """The text before the first field, base64-encoded once: whole 57-byte lines, and the rest."""
        head = self.parts[0].encode("utf-8")
        whole = len(head) - len(head) % BASE64_LINE_BYTES
        return base64_line_bytes(head[:whole]), head[whole:]

    def fill_base64(self, values: Mapping[str, str]) -> tuple[bytes, bytes]:
        """``fill(values)`` as UTF-8 in base64 lines, in two pieces to be sent one after the other.

        The first is the variant's own bytes, shared by every message (the text
        before the first field, encoded once); only the rest is encoded per call.
        """
        encoded_head, leftover = self._base64_head
        return encoded_head, base64_line_bytes(leftover + self._rest(values).encode("utf-8"))


@dataclass(frozen=True)
class RenderedDigest:
    """One variant of an issue's digest, ready to be personalised."""

    subject: str
    html: Fill
    text: Fill
    sections: tuple[str, ...]
    items: int
    summary_limit: int | None
    html_bytes: int = 0  # the compiled HTML, before the per-subscriber values are filled in

    @property
    def shortened(self) -> bool:
        return self.summary_limit is not None

    def personalise(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(html, text) for one subscriber."""
        return self.html.fill(values), self.text.fill(values)

    def personalise_base64(
        self, values: Mapping[str, str]
    ) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
        """(html, text) for one subscriber in base64 lines, each as :meth:`Fill.fill_base64` gives it."""
        return self.html.fill_base64(values), self.text.fill_base64(values)


BASE64_LINE_BYTES = 57  # 76 base64 characters, the longest line RFC 2045 allows


def base64_lines(data: bytes) -> str:
    """Base64 in CRLF-terminated lines of 76 characters."""
    return base64_line_bytes(data).decode("ascii")


def base64_line_bytes(data: bytes) -> bytes:
    """:func:`base64_lines` as bytes, ready for the wire."""
    encoded = base64.b64encode(data)
    return b"".join([encoded[i : i + 76] + b"\r\n" for i in range(0, len(encoded), 76)])


def warmup_heading(issue: Issue) -> str:
    """The warm-up news heading in the issue's own words ("" when it has none: the catalog's then).

    That is the text leading into the warm-up bullets ("A few short notes:"), without its colon.
    """
    from digest.feeds.entries import warmup_lead

    return warmup_lead(issue)[0]


def render_subject(issue: Issue, config: Config) -> str:
    """The subject from ``[email] subject`` (a jinja2 template); one line, never empty.

    ``issue.full_title`` there joins title and headline as the site's language does.
    """
    import jinja2

    try:
        subject = (
            jinja2.Environment(autoescape=False)
            .from_string(config.email.subject)
            .render(issue=_IssueView.of(issue, config), site=config.site)
        )
    except jinja2.TemplateError as exc:
        raise TemplateError(f"[email] subject does not render: {exc}", path=config.path) from None
    subject = " ".join(subject.split())
    if not subject:
        raise TemplateError("[email] subject renders empty", path=config.path)
    return subject


@dataclass
class DigestRenderer:
    """Renders an issue's digest, caching one :class:`RenderedDigest` per variant."""

    issue: Issue
    config: Config
    permalink: str
    feeds_url: str
    compiles: int = 0
    _cache: dict[frozenset[str] | None, RenderedDigest | None] = field(default_factory=dict)

    @classmethod
    def for_issue(cls, issue: Issue, config: Config) -> DigestRenderer:
        """The renderer with the issue's web address and the site's feeds, as every send uses."""
        from digest.feeds.entries import feeds_base_url, online_url

        return cls(issue, config, online_url(config, issue), feeds_base_url(config))

    def __post_init__(self) -> None:
        self.subject = render_subject(self.issue, self.config)
        intro = html_to_text(self.issue.intro_html).replace("\n", " ")
        self.preheader = (intro or self.issue.headline or self.subject)[:150]

    def variant(self, sections: frozenset[str] | None = None) -> RenderedDigest | None:
        """The digest for subscribers of ``sections`` (None: all); None when it has nothing for them."""
        if sections is not None and not sections:
            sections = None
        if sections not in self._cache:
            self._cache[sections] = self._render(sections)
        return self._cache[sections]

    def _render(self, sections: frozenset[str] | None) -> RenderedDigest | None:
        chosen = [s for s in self.issue.sections if s.items and (sections is None or s.slug in sections)]
        if not chosen and self.issue.items:
            return None
        keep = {id(s) for s in chosen} | {id(s) for s in self.issue.sections if s.prose and not s.items}
        chosen = [s for s in self.issue.sections if id(s) in keep]  # prose sections go to everyone
        if not chosen and not self.issue.preamble:
            return None
        budget = self.config.email.max_html_bytes - FIELD_ALLOWANCE
        for limit in SUMMARY_LIMITS:
            context = self._context(chosen, limit)
            html = self._compile(
                render_template("digest.mjml.j2", newsletter_templates(self.config), **context)
            )
            if len(html.encode("utf-8")) <= budget or limit == SUMMARY_LIMITS[-1]:
                break
        text = render_template(
            "digest.txt.j2", newsletter_templates(self.config), autoescape=False, **context
        )
        return RenderedDigest(
            subject=self.subject,
            html=Fill.split(html, escape=True),
            text=Fill.split(_tidy_text(text), escape=False),
            sections=tuple(s.slug for s in chosen),
            items=sum(len(s.items) for s in chosen),
            summary_limit=limit,
            html_bytes=len(html.encode("utf-8")),
        )

    def smallest_html_bytes(self) -> int:
        """How big the whole digest is at the last shortening step (every summary cut): one compile."""
        chosen = [s for s in self.issue.sections if s.items]
        context = self._context(chosen, SUMMARY_LIMITS[-1])
        html = self._compile(render_template("digest.mjml.j2", newsletter_templates(self.config), **context))
        return len(html.encode("utf-8"))

    def _context(self, sections: Sequence[Any], limit: int | None) -> dict[str, Any]:
        from markupsafe import Markup

        from digest.feeds.entries import warmup_lead

        views = [self._section(s, limit, f"s{n}") for n, s in enumerate(sections, 1)]
        intro = self._absolute(self.issue.intro_html)
        warmup = [self._absolute(h) for h in self.issue.warmup_html]
        lead, preamble = warmup_lead(self.issue)  # the lead-in is the warm-up's heading, said once
        return {
            "issue": _IssueView.of(self.issue, self.config),
            "warmup_heading": lead,
            "site": self.config.site,
            "subject": self.subject,
            "preheader": self.preheader,
            "permalink": self.permalink,
            "feeds_url": self.feeds_url,
            "intro": Markup(intro),
            "warmup": [Markup(h) for h in warmup],
            "intro_text": html_to_text(intro, urls=True),
            "warmup_text": [html_to_text(h, urls=True) for h in warmup],
            "sections": views,
            "preamble": [Markup(self._absolute(p.html)) for p in preamble],
            "preamble_text": [html_to_text(self._absolute(p.html), urls=True) for p in preamble],
            "shortened": limit is not None,
            "fields": _PLACEHOLDERS,
            **reader_context(self.issue, self.config, views),
        }

    def _section(self, section: Section, limit: int | None, anchor: str) -> _SectionView:
        """A section as the templates see it: its items, and its top and subsections with their prose."""
        from markupsafe import Markup

        parts = []
        for part in section.parts:
            html = [self._absolute(p.html) for p in part.prose]
            items = tuple(self._item(i, limit) for i in part.items)
            if html or items:
                text = tuple(html_to_text(h, urls=True) for h in html)
                parts.append(_PartView(part.name, tuple(Markup(h) for h in html), text, items))
        items = tuple(item for part in parts for item in part.items)
        return _SectionView(section.name, section.slug, items, anchor, tuple(parts))

    def _item(self, item: Item, limit: int | None) -> _ItemView:
        from markupsafe import Markup, escape

        summary_html = self._absolute(item.summary_html)
        text = html_to_text(summary_html, urls=True)
        flat = " ".join(html_to_text(summary_html).split())
        if limit is None or len(flat) <= limit:
            summary, lines = Markup(summary_html), text.splitlines()
        elif limit == 0:
            summary, lines = Markup(""), []
        else:
            cut = flat[:limit].rstrip() + "…"
            _ = gettext_for(self.config.site.language)
            more = _("Read more")
            summary = Markup('<p>{}<a href="{}">{}</a></p>').format(escape(cut), self.permalink, more)
            lines = [cut]
        links = tuple(Link(link.label, absolute_url(link.url, self.permalink)) for link in item.links)
        return _ItemView(item, absolute_url(item.href, self.permalink), links, summary, tuple(lines))

    def _absolute(self, fragment: str) -> str:
        """Sanitised HTML from the issue with its relative links resolved against the permalink."""
        return absolutize_links(fragment, self.permalink)

    def _compile(self, mjml: str) -> str:
        import minify_html
        from mjml import mjml2html

        self.compiles += 1
        try:
            html = mjml2html(mjml, disable_comments=True, fonts={})  # no remote web fonts: system fonts only
        except Exception as exc:  # mjml-python raises plain exceptions for invalid MJML
            raise TemplateError(f"digest.mjml.j2 is not valid MJML: {exc}") from None
        return minify_html.minify(
            inline_css(html),
            keep_comments=True,  # Outlook's <!--[if mso]> conditionals
            keep_closing_tags=True,
            keep_html_and_head_opening_tags=True,
            minify_css=True,
        )


@dataclass(frozen=True)
class _IssueView:
    """An issue as the templates see it: ``full_title`` joined in the site's language."""

    issue: Issue
    full_title: str

    @classmethod
    def of(cls, issue: Issue, config: Config) -> _IssueView:
        return cls(issue, join_title(issue.title, issue.headline, config.site.language))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.issue, name)


@dataclass(frozen=True)
class _ItemView:
    """An item as the templates see it: absolute links, its summary possibly shortened."""

    item: Item
    href: str
    links: tuple[Link, ...]
    summary: Any
    summary_lines: tuple[str, ...]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.item, name)


@dataclass(frozen=True)
class _PartView:
    """A section's top (``name`` empty) or a ``###`` subsection: prose (HTML and text) and items."""

    name: str
    prose: tuple[Any, ...]
    prose_text: tuple[str, ...]
    items: tuple[_ItemView, ...]


@dataclass(frozen=True)
class _SectionView:
    name: str
    slug: str
    items: tuple[_ItemView, ...]
    anchor: str  # the id the table of sections jumps to
    parts: tuple[_PartView, ...] = ()


def _tidy_text(text: str) -> str:
    """Collapse runs of blank lines the template leaves behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# At the last shortening step every summary is cut, and the built-in templates then never
# make more than 4 bytes of HTML per byte of the rest of the file, plus the page itself
# (measured on the real newsletter and on issues of hundreds of bare links): a file whose
# rest is small need not be rendered to know that its digest fits.
SOURCE_EXPANSION, TEMPLATE_BYTES = 4, 16_000


def size_finding(issue: Issue, config: Config, source_bytes: int | None = None) -> Finding | None:
    """A lint error when the digest is still over ``max_html_bytes`` after every shortening.

    Gmail would clip it (hiding the unsubscribe link), so it is not mailed
    automatically; ``--force`` (or a higher limit) mails it anyway.
    """
    from digest.errors import DigestError

    budget = config.email.max_html_bytes - FIELD_ALLOWANCE
    if source_bytes is not None and newsletter_templates(config) is None:
        summaries = sum(len(html_to_text(item.summary_html).encode("utf-8")) for item in issue.items)
        if SOURCE_EXPANSION * max(0, source_bytes - summaries) + TEMPLATE_BYTES <= budget:
            return None
    if not any(section.items for section in issue.sections):
        return None
    try:
        size = DigestRenderer.for_issue(issue, config).smallest_html_bytes()
    except DigestError:  # a template that does not render: the send and the preview say so
        return None
    if size <= budget:
        return None
    message = N_(
        "the digest is %(size)s bytes with every summary shortened, over [email] max_html_bytes = "
        "%(limit)s (less %(allowance)s for the links): Gmail would clip it; split the issue, "
        "or mail it anyway with --force"
    )
    sizes = {
        "size": f"{size:,}",
        "limit": f"{config.email.max_html_bytes:,}",
        "allowance": f"{FIELD_ALLOWANCE:,}",
    }
    return Finding(0, "digest-too-large", Severity.ERROR, message, tuple(sizes.items()))
