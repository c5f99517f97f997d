"""``digest serve``: one-click unsubscribe, double opt-in subscribe and section preferences.

Meant to sit behind a reverse proxy (it binds 127.0.0.1 by default). Routes are
matched on the last path segment, so any prefix the proxy adds works:

``POST .../unsubscribe?token=``  RFC 8058 one-click: unsubscribes at once.
``GET  .../unsubscribe?token=``  a page with one button; GET never unsubscribes,
                                 because mail scanners prefetch links.
``GET  .../subscribe`` and ``/``  the subscribe form (digest/web/pages.py).
``POST .../subscribe``           (email, sections) mails a confirmation link.
``GET/POST .../confirm?token=``  the address joins the list only here (POST).
``GET/POST .../preferences?token=`` choose sections.

Every change goes through the subscriber list's one locked, atomic rewrite, the
same one the CLI uses. Responses never say whether an address is
on the list; forged, altered or expired tokens get a 4xx page and change nothing.
"""

from __future__ import annotations

import contextlib
import http.server
import queue
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from typing import Any

from digest.config import Config
from digest.errors import ConfigError, DigestError, SubscriberError, TokenError
from digest.fsutil import file_lock, read_json, write_json
from digest.i18n import gettext_for
from digest.mail.tokens import TokenPayload, load_secret, read_token, stable_hash
from digest.newsletter.catalog import now_in
from digest.send.subscribers import (
    add_subscriber,
    check_email,
    find_subscriber,
    parse_sections,
    set_sections,
    set_status,
)
from digest.templating import render_template
from digest.web.localhttp import LocalServer
from digest.web.pages import SectionsWithEntries, done_links, section_options, subscribe_form

__all__ = ["SubscriptionServer", "send_confirmation"]

CONFIRMATIONS_FILE = "confirmations.json"
MAX_URL = 4096
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Page:
    status: int
    heading: str
    message: str
    form: dict[str, object] | None = None


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds for each key (a client address)."""

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self._events) > 10_000:  # forget idle clients; memory stays bounded
                for stale in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window]:
                    del self._events[stale]
            return True


class SubscriptionServer(LocalServer):
    """The self-service endpoints for one newsletter."""

    thread_name = "digest-serve"

    def __init__(self, config: Config, host: str | None = None, port: int | None = None):
        if not config.email.base_url:
            raise ConfigError(
                "set [email] base_url to where digest serve is reachable (e.g. https://example.org/digest/): "
                "the confirmation and preference links point there",
                path=config.path,
            )
        self.config = config
        self.secret = load_secret(config.paths.state)
        self.sections = config.feeds.section_names
        self.with_entries = SectionsWithEntries(config)
        self.subscribe_limit = RateLimiter(config.serve.subscribe_per_hour, 3600.0)
        # Subscription requests are answered at once and handled here, one at a time:
        # the answer never depends on (or waits for) the list or the mail server.
        self.requests: queue.Queue[tuple[str, frozenset[str], float]] = queue.Queue(maxsize=1000)
        threading.Thread(target=self._confirmations, name="digest-confirm", daemon=True).start()
        super().__init__((host or config.serve.host, config.serve.port if port is None else port), _Handler)

    # -- the endpoints: (method, route) -> Page ------------------------------------------------

    def handle(
        self, method: str, route: str, query: dict[str, str], form: dict[str, list[str]], client: str
    ) -> Page:
        _ = gettext_for(self.config.site.language)
        title = self.config.site.title
        now = time.time()
        token = query.get("token", "")
        if route == "unsubscribe":
            email = self._token(token, "unsubscribe", now).email
            if method == "GET":
                return Page(
                    200,
                    _("Unsubscribe"),
                    _("Unsubscribe %(email)s from %(title)s?", email=email, title=title),
                    {"button": _("Unsubscribe"), "one_click": True},
                )
            set_status(self.config.paths.subscribers, self._known, email, "unsubscribed")
            return Page(
                200,
                _("Unsubscribed"),
                _("%(email)s will no longer get %(title)s.", email=email, title=title),
                done_links(self.config, self._link("preferences", email)),
            )
        if route in ("subscribe", "") and method == "GET":
            return Page(200, *subscribe_form(self.config, self.with_entries.get()))
        if route == "subscribe" and method == "POST":
            return self._subscribe(form, client, now)
        if route == "confirm":
            payload = self._token(token, "confirm", now)
            if method == "GET":
                return Page(
                    200,
                    _("Confirm subscription"),
                    _("Subscribe %(email)s to %(title)s?", email=payload.email, title=title),
                    {"button": _("Confirm subscription")},
                )
            sections = frozenset(payload.sections or ())
            today = now_in(self.config).date()
            with contextlib.suppress(SubscriberError):  # already subscribed: the same answer either way
                add_subscriber(
                    self.config.paths.subscribers, self._known, payload.email, sections=sections, today=today
                )
            return Page(
                200,
                _("Subscribed"),
                _("Welcome! %(email)s will get %(title)s.", email=payload.email, title=title),
            )
        if route == "preferences":
            return self._preferences(method, token, form, now)
        return Page(404, _("Page not found"), _("There is no page at this address."))

    @property
    def _known(self) -> set[str]:
        return set(self.sections)

    def _link(self, route: str, email: str, **token: Any) -> str:
        from digest.mail.message import subscriber_link

        return subscriber_link(self.config, self.secret, route, email, **token)

    def _token(self, token: str, purpose: str, now: float) -> TokenPayload:
        return read_token(self.secret, token, purpose=purpose, now=now)

    def _subscribe(self, form: dict[str, list[str]], client: str, now: float) -> Page:
        _ = gettext_for(self.config.site.language)
        if not self.subscribe_limit.allow(client, now):
            return Page(
                429,
                _("Please try again later"),
                _("Too many requests from this address; try again in an hour."),
            )
        try:
            email = check_email(_one(form, "email"))
            sections = parse_sections(";".join(form.get("sections", [])), self._known)
        except SubscriberError as exc:
            return Page(400, _("Cannot subscribe"), exc.message)
        try:
            self.requests.put_nowait((email, sections, now))
        except queue.Full:
            return Page(
                503, _("Please try again later"), _("There are too many requests just now; try again later.")
            )
        return Page(
            202,
            _("Check your inbox"),
            _(
                "If %(email)s can subscribe, a confirmation mail is on its way; open its link to finish.",
                email=email,
            ),
        )

    def drain(self) -> None:
        """Wait until every queued subscription request has been handled."""
        self.requests.join()

    def _confirmations(self) -> None:
        """The background worker: mail a confirmation link unless the address needs none."""
        while True:
            email, sections, now = self.requests.get()
            try:
                self._confirm_one(email, sections, now)
            except Exception as exc:  # the worker must outlive any one request
                print(f"confirmation for a subscribe request not sent: {exc}", flush=True)
            finally:
                self.requests.task_done()

    def _confirm_one(self, email: str, sections: frozenset[str], now: float) -> None:
        existing = find_subscriber(self.config.paths.subscribers, self._known, email)
        if (existing is not None and existing.active) or not self._may_confirm(email, now):
            return
        expires = int(now + self.config.serve.confirm_ttl_hours * 3600)
        link = self._link("confirm", email, expires=expires, sections=tuple(sorted(sections)))
        send_confirmation(self.config, self.secret, email, link)

    def _may_confirm(self, email: str, now: float) -> bool:
        """No second confirmation mail to one address within ``confirm_window_minutes``."""
        state = self.config.paths.state
        key = stable_hash(self.secret, "confirm", email.lower())[:32]
        window = self.config.serve.confirm_window_minutes * 60
        with file_lock(state / "confirmations.lock", what="the confirmation log", wait=10):
            sent = read_json(state / CONFIRMATIONS_FILE, what="the confirmation log") or {}
            sent = {k: v for k, v in sent.items() if isinstance(v, int | float) and now - v < window}
            if key in sent:
                return False
            sent[key] = int(now)
            write_json(state / CONFIRMATIONS_FILE, sent)
        return True

    def _preferences(self, method: str, token: str, form: dict[str, list[str]], now: float) -> Page:
        _ = gettext_for(self.config.site.language)
        email = self._token(token, "preferences", now).email
        chosen: frozenset[str] = frozenset()
        if method == "POST":
            try:
                chosen = parse_sections(";".join(form.get("sections", [])), self._known)
            except SubscriberError as exc:
                return Page(400, _("Cannot save"), exc.message)
            saved = set_sections(self.config.paths.subscribers, self._known, email, chosen)
            if saved is not None and saved.status == "unsubscribed":  # the way back from the done page
                set_status(self.config.paths.subscribers, self._known, email, "active")
            message = (
                _("Saved. You will get only the sections you chose.")
                if chosen
                else _("Saved. You will get every section.")
            )
        else:
            current = find_subscriber(self.config.paths.subscribers, self._known, email)
            chosen = current.sections if current is not None else frozenset()
            message = _("Choose the sections you want; choose none to get them all.")
        options = section_options(self.sections, chosen, self.with_entries.get())
        unsubscribe = self._link("unsubscribe", email)
        return Page(
            200,
            _("Sections for %(email)s", email=email),
            message,
            {"button": _("Save"), "sections": options, "unsubscribe": unsubscribe},
        )


class _Handler(http.server.BaseHTTPRequestHandler):
    server: SubscriptionServer
    server_version = "digest"
    sys_version = ""
    timeout = 15  # seconds a client may take to send its request

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        _ = gettext_for(self.server.config.site.language)
        if len(self.path) > MAX_URL:
            self._reply(Page(414, _("Address too long"), _("The address of the request is too long.")))
            return
        parts = urllib.parse.urlsplit(self.path)
        route = parts.path.rstrip("/").rsplit("/", 1)[-1]
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        form: dict[str, list[str]] = {}
        if method == "POST":
            length = self._length()
            if length is None:
                return
            body = self.rfile.read(length)
            form = _parse_form(self.headers.get("Content-Type", ""), body)
        try:
            page = self.server.handle(method, route, query, form, self._client())
        except TokenError as exc:
            page = Page(
                400, _("Invalid link"), _("%(reason)s. Use the link in your newest mail.", reason=exc.message)
            )
        except DigestError as exc:
            print(f"{self._client()} {method} {urllib.parse.urlsplit(self.path).path}: {exc}", flush=True)
            page = Page(503, _("Cannot handle this just now"), _("Please try again later."))
        self._reply(page)

    def _client(self) -> str:
        """Who is asking: behind a trusted proxy, the address it saw (the last X-Forwarded-For entry)."""
        if self.server.config.serve.trust_proxy:
            forwarded = self.headers.get("X-Forwarded-For", "")
            if forwarded.strip():
                return forwarded.rsplit(",", 1)[-1].strip()
        return str(self.client_address[0])

    def _length(self) -> int | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        _ = gettext_for(self.server.config.site.language)
        if length < 0:
            self._reply(Page(400, _("Invalid request"), _("The request is not valid.")))
            return None
        if length > self.server.config.serve.max_body_bytes:
            self._reply(Page(413, _("Too long"), _("What was sent is too long.")))
            return None
        return length

    def _reply(self, page: Page) -> None:
        config = self.server.config
        body = render_template("web.html.j2", config.email.templates, page=page, site=config.site).encode(
            "utf-8"
        )
        self.send_response(page.status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Never log query strings: they carry tokens.
        path = urllib.parse.urlsplit(self.path).path if hasattr(self, "path") else "-"
        status = args[1] if len(args) > 1 else "-"
        print(f"{self.client_address[0]} {getattr(self, 'command', '-')} {path} {status}", flush=True)


def _parse_form(content_type: str, body: bytes) -> dict[str, list[str]]:
    """URL-encoded forms, and the multipart/form-data RFC 8058 also allows for one-click."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        import email.parser
        import email.policy

        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body
        )
        form: dict[str, list[str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                form.setdefault(str(name), []).append(str(part.get_content()).strip())
        return form
    return urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))


def _one(form: dict[str, list[str]], key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def send_confirmation(config: Config, secret: bytes, address: str, link: str) -> None:
    """Mail the double opt-in link through the configured transport."""
    import email.utils

    from digest.mail.message import CRLF, encode_text, format_mailbox, parse_sender
    from digest.mail.render import base64_lines
    from digest.send.transport import SendFailure, send_one

    _ = gettext_for(config.site.language)
    name, sender = parse_sender(config.email.sender)
    title = config.site.title
    text = render_template(
        "confirm.txt.j2",
        config.email.templates,
        autoescape=False,
        site=config.site,
        link=link,
        address=address,
    )
    subject = _("Please confirm your subscription to %(title)s", title=title)
    key = stable_hash(secret, "confirm-mail", address, link)[:32]
    headers = [
        f"From: {format_mailbox(name, sender, 'From')}",
        f"To: {address}",
        f"Subject: {encode_text(subject, 'Subject')}",
        f"Date: {email.utils.format_datetime(now_in(config))}",
        f"Message-ID: <{key}@{sender.split('@')[1]}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
    ]
    data = (CRLF.join(headers) + CRLF + CRLF + base64_lines(text.encode("utf-8"))).encode("ascii")
    try:
        send_one(config, sender, address, data)
    except SendFailure as failure:
        raise DigestError(f"confirmation mail to {address} not sent: {failure}") from None
