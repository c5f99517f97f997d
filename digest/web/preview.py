"""The editor's preview: the digest as a subscriber gets it, before anything is sent.

``digest preview ISSUE`` writes ``[paths] previews/<ISSUE>/`` with ``email.html``,
``email.txt``, ``email.eml`` (one whole message, as a sample subscriber gets it)
and ``report.txt`` (size, items per section, lint findings, feed entries).
``--serve`` shows all of it on a local page, the email at desktop and phone
widths side by side.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len

from digest.config import Config, SiteConfig
from digest.feeds.build import collect_feeds
from digest.fsutil import write_changed_files
from digest.i18n import N_, format_date, gettext_for, join_title
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer, RenderedDigest
from digest.mail.tokens import load_secret
from digest.newsletter.lint import count_by_severity
from digest.newsletter.model import Issue
from digest.release.rules import NOT_AN_ISSUE, readiness
from digest.templating import render_template
from digest.web.localhttp import LocalServer

__all__ = ["SAMPLE_ADDRESS", "Preview", "PreviewServer", "render_preview", "write_preview"]

SAMPLE_ADDRESS = "reader@example.com"
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class Preview:
    """A written preview: where it is, and what the report says."""

    issue: Issue
    directory: Path
    html: str
    text: str
    eml: bytes
    report: str
    feed_entries: tuple[tuple[str, str, str], ...]  # (feed, entry title, link) the issue adds
    site: SiteConfig  # the page speaks its language

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    def files(self) -> dict[str, tuple[str, bytes]]:
        """The preview's files: name -> (content type, bytes), as written and as served."""
        return {
            "email.html": ("text/html; charset=utf-8", self.html.encode("utf-8")),
            "email.txt": ("text/plain; charset=utf-8", self.text.encode("utf-8")),
            "email.eml": ("message/rfc822", self.eml),
            "report.txt": ("text/plain; charset=utf-8", self.report.encode("utf-8")),
        }


def render_preview(config: Config, issue: Issue, now: dt.datetime) -> Preview:
    """Render everything a preview shows, without writing it."""
    renderer = DigestRenderer.for_issue(issue, config)
    digest = renderer.variant()
    if digest is None:
        from digest.errors import ReleaseError

        raise ReleaseError("the issue has no items to mail", path=issue.path)
    secret = load_secret(config.paths.state)
    factory = MessageFactory(issue, config, secret, email.utils.format_datetime(now))
    _ = gettext_for(config.site.language)
    sample_name = _("Reader")
    values = {**factory.links(SAMPLE_ADDRESS), "name": sample_name}
    html, text = digest.personalise(values)
    eml = factory.build(SAMPLE_ADDRESS, sample_name, digest).data
    directory = config.paths.previews / issue.stem
    report = _report(config, issue, digest, html, text, now)
    entries = tuple(
        (feed.title, entry.title, entry.link)
        for feed in collect_feeds([issue], config)
        for entry in feed.entries
    )
    return Preview(issue, directory, html, text, eml, report, entries, config.site)


def write_preview(config: Config, issue: Issue, now: dt.datetime) -> Preview:
    """Render and write ``email.html``, ``email.txt``, ``email.eml`` and ``report.txt``."""
    preview = render_preview(config, issue, now)
    write_changed_files({name: data for name, (_, data) in preview.files().items()}, preview.directory)
    return preview


def _report(
    config: Config, issue: Issue, digest: RenderedDigest, html: str, text: str, now: dt.datetime
) -> str:
    _ = gettext_for(config.site.language)
    size = len(html.encode("utf-8"))
    counts = count_by_severity(issue.findings)
    budget = _(
        "%(size).1f KB (budget %(budget).1f KB; Gmail clips at %(clip)s KB)",
        size=size / 1024,
        budget=config.email.max_html_bytes / 1024,
        clip=GMAIL_CLIP_BYTES // 1024,
    )
    shortened = _("summaries shortened to %(limit)s characters to fit", limit=digest.summary_limit)
    per_section = _(", ").join(f"{s.name} {len(s.items)}" for s in issue.sections)
    rows = [
        (_("issue:"), join_title(issue.title, issue.headline, config.site.language)),
        (_("file:"), str(issue.path)),
        (_("subject:"), digest.subject),
        (_("status:"), _status(config, issue, now)),
        (_("html:"), budget),
        *([("", shortened)] if digest.shortened else []),
        (_("text:"), _("%(size).1f KB", size=len(text.encode("utf-8")) / 1024)),
        (_("items:"), _("%(count)s (%(sections)s)", count=digest.items, sections=per_section)),
        (_("warm-up:"), _("%(count)s entries", count=len(issue.warmup))),
        (
            _("feeds:"),
            _("1 entry in atom.xml/rss.xml, %(count)s in the section feeds", count=len(issue.items)),
        ),
        (_("lint:"), _(", ").join(f"{n} {_(SEVERITY_WORDS[s])}" for s, n in counts.items())),
    ]
    width = max(cell_len(label) for label, _value in rows) + 1
    lines = [(label + " " * (width - cell_len(label)) + value).rstrip() for label, value in rows]
    lines += [f"  {f.format(issue.path)}" for f in issue.findings]
    return "\n".join(lines) + "\n"


# The severity names as the report shows them (the catalog has them as messages).
SEVERITY_WORDS = {"fatal": N_("fatal"), "error": N_("error"), "warning": N_("warning")}


def _status(config: Config, issue: Issue, now: dt.datetime) -> str:
    _ = gettext_for(config.site.language)
    ready = readiness(issue, now)
    reasons = {NOT_AN_ISSUE: _("not an issue yet (fatal lint findings)"), "draft": _("draft")}
    reasons["published"] = _("published")
    reason = reasons.get(ready.reason) or _(
        "scheduled for %(date)s", date=format_date(issue.date, config.site.language)
    )
    if ready.published:
        return _("%(reason)s; in the feeds", reason=reason)
    return _("%(reason)s; not in the feeds", reason=reason)


# -- the local preview page ---------------------------------------------------------------------


class PreviewServer(LocalServer):
    """Serves one preview on 127.0.0.1: the page, the email parts and the .eml."""

    thread_name = "digest-preview"

    def __init__(self, preview: Preview, host: str = "127.0.0.1", port: int = 0):
        self.pages = {
            "/": ("text/html; charset=utf-8", _page(preview).encode("utf-8")),
            **{f"/{name}": page for name, page in preview.files().items()},
        }
        super().__init__((host, port), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:
        page = self.server.pages.get(self.path.split("?", 1)[0])
        if page is None:
            self.send_error(404)
            return
        content_type, body = page
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: the CLI prints the URL
        return


def _page(preview: Preview) -> str:
    findings = preview.issue.findings
    return render_template(
        "preview.html.j2",
        site=preview.site,
        issue=preview.issue,
        issue_title=join_title(preview.issue.title, preview.issue.headline, preview.site.language),
        report=preview.report,
        text=preview.text,
        findings=[f.format(preview.issue.path) for f in findings],
        severities=[str(f.severity) for f in findings],
        entries=preview.feed_entries,
    )
