"""The editor's preview: the digest as a subscriber gets it, before anything is sent.

``digest preview ISSUE`` writes ``[paths] previews/<ISSUE>/`` with ``email.html``,
``email.txt``, ``email.eml`` (one whole message, as a sample subscriber gets it)
and ``report.txt`` (size, items per section, lint findings, feed entries).
``--serve`` shows all of it on a local page: the release decision and the
findings first, the inbox row (From, Subject, preheader), the email at desktop
and phone widths side by side in light or dark, as a subscriber of chosen
sections gets it; the page reloads itself when the issue file changes.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len

from digest.config import Config, SiteConfig
from digest.errors import DigestError
from digest.feeds.entries import collect_feeds
from digest.fsutil import write_changed_files
from digest.i18n import N_, format_date, gettext_for, join_title
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer, RenderedDigest
from digest.mail.tokens import load_secret
from digest.newsletter.discover import issue_name
from digest.newsletter.lint import count_by_severity
from digest.newsletter.model import Issue
from digest.release.rules import NOT_AN_ISSUE, readiness
from digest.templating import render_template
from digest.web.localhttp import LocalServer

__all__ = [
    "SAMPLE_ADDRESS",
    "Preview",
    "PreviewServer",
    "release_decision",
    "render_preview",
    "write_preview",
]

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
    decision: str = ""  # "will not be mailed: 1 error, line 63"
    blocked: bool = False
    inbox: tuple[str, str, str] = ("", "", "")  # From, Subject, preheader
    summary: str = ""  # the report without its findings (the page lists them once, at the top)

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
    directory = config.paths.previews / issue_name(config.paths.issues, issue.path)
    summary = _report(config, issue, digest, html, text, now)
    language = config.site.language
    report = summary + "".join(f"  {f.format(issue.path, language)}\n" for f in issue.findings)
    decision, blocked = release_decision(config, issue, now)
    inbox = (config.email.sender, digest.subject, renderer.preheader)
    entries = tuple(
        (feed.title, entry.title, entry.link)
        for feed in collect_feeds([issue], config)
        for entry in feed.entries
    )
    return Preview(
        issue, directory, html, text, eml, report, entries, config.site, decision, blocked, inbox, summary
    )


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


def release_decision(config: Config, issue: Issue, now: dt.datetime) -> tuple[str, bool]:
    """What will happen to the issue, one line the editor reads first; True when it will not be mailed.

    Blocking findings (fatal, error) come with their lines: "will not be mailed:
    1 error, line 63". The rule is the release rules' own (digest/release/rules.py).
    """
    from digest.release.rules import refusal
    from digest.release.schedule import describe_moment, send_time

    _ = gettext_for(config.site.language)
    blocking = [f for f in issue.findings if str(f.severity) in ("fatal", "error")]
    if blocking:
        counts = count_by_severity(blocking)
        problems = _(", ").join(f"{n} {_(SEVERITY_WORDS[sev])}" for sev, n in counts.items() if n)
        lines = _(", ").join(str(f.line) for f in blocking if f.line)
        if lines:
            problems = _("%(problems)s, line %(lines)s", problems=problems, lines=lines)
        return _("Will not be mailed: %(problems)s", problems=problems), True
    mailed = _mailed_already(config, issue) or _as_status_says(config, issue, now)
    if mailed is not None:
        return mailed
    ready = readiness(issue, now)
    if ready.reason == "draft":
        return _("Will not be mailed: it is a draft"), True
    if refusal(issue, now, force=False, action="mail") and not ready.published:
        date = format_date(issue.date, config.site.language)
        decision = _("Will be mailed from %(date)s, once released", date=date)
    elif config.release.mode == "auto":
        minutes = config.release.settle_minutes
        decision = _("Will be mailed once the file has not changed for %(minutes)s minutes", minutes=minutes)
    else:
        decision = _("Will be mailed once approved")
    moment = send_time(issue, config, now)
    if moment is not None and moment > now:
        when = describe_moment(moment, config.site.timezone)
        decision = _("%(decision)s, at its send hour %(when)s", decision=decision, when=when)
    return decision, False


def _mailed_already(config: Config, issue: Issue) -> tuple[str, bool] | None:
    """What the ledger says, as ``digest status`` reads it: mailed, or a send under way (paused or not)."""
    from digest.send.ledger import read_tally
    from digest.send.replies import pause_note

    _ = gettext_for(config.site.language)
    tally = read_tally(config.paths.state, issue.key)
    counts = {"sent": tally.count("sent"), "failed": tally.count("failed")}
    if tally.finished:
        return _("Already mailed: sent %(sent)s, failed %(failed)s", **counts), True
    if not tally.exists:
        return None
    note = pause_note(config.paths.state, issue.key)
    if note is not None:
        return _("Being mailed, paused: %(note)s; the next digest run goes on", note=note), False
    return _("Being mailed: sent %(sent)s, failed %(failed)s so far", **counts), False


def _as_status_says(config: Config, issue: Issue, now: dt.datetime) -> tuple[str, bool] | None:
    """The release rules' answer (:func:`digest.release.rules.decide`) from the state ``digest status``
    reads, when that state knows this very version of the file; None when it does not (a new or edited
    file: the rules are then applied to the file alone, below)."""
    import hashlib

    from digest.newsletter.lint import LintReport
    from digest.release.rules import decide
    from digest.release.state import load_state
    from digest.send.ledger import read_tally

    state = load_state(config.paths.state)
    record = state.issues.get(issue_name(config.paths.issues, issue.path)) if state else None
    try:
        current = hashlib.sha256(issue.path.read_bytes()).hexdigest()
    except OSError:
        return None
    if record is None or record.hash != current:
        return None
    report = LintReport(issue.path, issue.findings, issue, current)
    status = decide(report, record, read_tally(config.paths.state, issue.key), config, now)
    _ = gettext_for(config.site.language)
    if status.released or "; scheduled for " in status.release:
        return _("Will be mailed: %(why)s", why=status.release), False
    if status.release.startswith(("held", "changed since", "history", "mailed", "already mailed")):
        return _("Will not be mailed: %(why)s", why=status.release), True
    return None


# -- the local preview page ---------------------------------------------------------------------


class PreviewServer(LocalServer):
    """Serves one preview on 127.0.0.1: the page, the email parts and the .eml.

    With ``rebuild`` (``digest preview --serve``), ``/version`` notices an edit of
    the issue file, renders the preview again, and the page reloads itself.
    ``/email.html?sections=a;b`` is the email as a subscriber of those sections gets it.
    """

    thread_name = "digest-preview"

    def __init__(
        self,
        preview: Preview,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rebuild: Callable[[], Preview] | None = None,
        config: Config | None = None,
    ):
        self.rebuild = rebuild
        self.config = config
        self.error = ""
        self._lock = threading.Lock()
        self._use(preview)
        super().__init__((host, port), _Handler)

    def _use(self, preview: Preview) -> None:
        self.preview = preview
        self.stamp = _stamp(preview.issue.path)
        self.pages = {f"/{name}": page for name, page in preview.files().items()}

    def version(self) -> str:
        """A token that changes whenever the shown preview does (re-rendered after an edit of the file)."""
        with self._lock:
            if self.rebuild is not None and _stamp(self.preview.issue.path) != self.stamp:
                try:
                    self._use(self.rebuild())
                    self.error = ""
                except DigestError as exc:  # half-written: keep showing the last good one, say why
                    self.stamp = _stamp(self.preview.issue.path)
                    self.error = str(exc)
            return f"{self.stamp[0]}-{self.stamp[1]}-{len(self.error)}"

    def page(self, query: dict[str, list[str]]) -> bytes:
        chosen, scheme = _choice(query)
        return _page(self.preview, chosen, scheme, self.version(), self.error).encode("utf-8")

    def email_for(self, sections: tuple[str, ...], scheme: str = "light") -> bytes | None:
        """The email of a subscriber who chose ``sections``, in light or dark; None when it has no items.

        Dark is the email's own ``prefers-color-scheme: dark`` rules, made to apply whatever the
        editor's system prefers, so both can be seen on one machine.
        """
        html = self._variant(sections)
        if html is not None and scheme == "dark":
            html = _DARK_QUERY.sub("min-width:0px", html)
        return None if html is None else html.encode("utf-8")

    def _variant(self, sections: tuple[str, ...]) -> str | None:
        if not sections or self.config is None:
            return self.preview.html
        renderer = DigestRenderer.for_issue(self.preview.issue, self.config)
        digest = renderer.variant(frozenset(sections))
        if digest is None:
            return None
        values = {"email": SAMPLE_ADDRESS, "name": "", "unsubscribe_url": "#", "preferences_url": "#"}
        return digest.personalise(values)[0]


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        page: tuple[str, bytes] | None
        if parts.path == "/":
            page = ("text/html; charset=utf-8", self.server.page(query))
        elif parts.path == "/version":
            page = ("text/plain; charset=utf-8", self.server.version().encode())
        elif parts.path == "/email.html" and (query.get("sections") or query.get("scheme")):
            body = self.server.email_for(*_choice(query))
            page = None if body is None else ("text/html; charset=utf-8", body)
        else:
            page = self.server.pages.get(parts.path)
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


def _choice(query: dict[str, list[str]]) -> tuple[tuple[str, ...], str]:
    """The sections (``?sections=a;b``) and colour scheme (``?scheme=dark``) a preview URL asks for."""
    chosen = tuple(sorted({s for value in query.get("sections", []) for s in value.split(";") if s}))
    return chosen, "dark" if query.get("scheme") == ["dark"] else "light"


def _page(preview: Preview, chosen: tuple[str, ...], scheme: str, version: str, error: str) -> str:
    findings = sorted(preview.issue.findings, key=lambda f: (f.severity.rank, f.line))
    sections = [(s.slug, s.name, s.slug in chosen) for s in preview.issue.sections if s.items]
    shown = {
        **({"sections": ";".join(chosen)} if chosen else {}),
        **({"scheme": "dark"} if scheme == "dark" else {}),
    }
    query = urllib.parse.urlencode(shown)
    return render_template(
        "preview.html.j2",
        site=preview.site,
        preview=preview,
        issue=preview.issue,
        issue_title=join_title(preview.issue.title, preview.issue.headline, preview.site.language),
        report=preview.summary or preview.report,
        text=preview.text,
        findings=[(str(f.severity), f.format(preview.issue.path, preview.site.language)) for f in findings],
        entries=preview.feed_entries,
        sections=sections,
        email_src="/email.html" + (f"?{query}" if query else ""),
        scheme=scheme,
        version=version,
        error=error,
    )


_DARK_QUERY = re.compile(r"prefers-color-scheme\s*:\s*dark")
