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

from digest.config import Config
from digest.feeds.build import collect_feeds
from digest.fsutil import write_changed_files
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer, RenderedDigest
from digest.mail.tokens import load_secret
from digest.newsletter.lint import count_by_severity
from digest.newsletter.model import Issue
from digest.release.rules import readiness
from digest.templating import render_template
from digest.web.localhttp import LocalServer

__all__ = ["SAMPLE_ADDRESS", "Preview", "PreviewServer", "render_preview", "write_preview"]

SAMPLE_ADDRESS = "reader@example.com"
SAMPLE_NAME = "读者"
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
    values = {**factory.links(SAMPLE_ADDRESS), "name": SAMPLE_NAME}
    html, text = digest.personalise(values)
    eml = factory.build(SAMPLE_ADDRESS, SAMPLE_NAME, digest).data
    directory = config.paths.previews / issue.stem
    report = _report(config, issue, digest, html, text, now)
    entries = tuple(
        (feed.title, entry.title, entry.link)
        for feed in collect_feeds([issue], config)
        for entry in feed.entries
    )
    return Preview(issue, directory, html, text, eml, report, entries)


def write_preview(config: Config, issue: Issue, now: dt.datetime) -> Preview:
    """Render and write ``email.html``, ``email.txt``, ``email.eml`` and ``report.txt``."""
    preview = render_preview(config, issue, now)
    write_changed_files({name: data for name, (_, data) in preview.files().items()}, preview.directory)
    return preview


def _report(
    config: Config, issue: Issue, digest: RenderedDigest, html: str, text: str, now: dt.datetime
) -> str:
    size = len(html.encode("utf-8"))
    counts = count_by_severity(issue.findings)
    lines = [
        f"issue:     {issue.full_title}",
        f"file:      {issue.path}",
        f"subject:   {digest.subject}",
        f"status:    {_status(issue, now)}",
        f"html:      {size / 1024:.1f} KB (budget {config.email.max_html_bytes / 1024:.1f} KB; "
        f"Gmail clips at {GMAIL_CLIP_BYTES // 1024} KB)",
    ]
    if digest.shortened:
        lines.append(f"           summaries shortened to {digest.summary_limit} characters to fit")
    lines += [
        f"text:      {len(text.encode('utf-8')) / 1024:.1f} KB",
        f"items:     {digest.items} (" + ", ".join(f"{s.name} {len(s.items)}" for s in issue.sections) + ")",
        f"warm-up:   {len(issue.warmup)} entries",
        f"feeds:     1 entry in atom.xml/rss.xml, {len(issue.items)} in the section feeds",
        "lint:      " + ", ".join(f"{n} {severity}" for severity, n in counts.items()),
        *(f"  {f.format(issue.path)}" for f in issue.findings),
    ]
    return "\n".join(lines) + "\n"


def _status(issue: Issue, now: dt.datetime) -> str:
    ready = readiness(issue, now)
    return f"{ready.reason}; {'in the feeds' if ready.published else 'not in the feeds'}"


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
        issue=preview.issue,
        report=preview.report,
        text=preview.text,
        findings=[f.format(preview.issue.path) for f in findings],
        severities=[str(f.severity) for f in findings],
        entries=preview.feed_entries,
    )
