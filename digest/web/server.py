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

Every change goes through the subscriber list's own functions, the same ones the
CLI uses; one that cannot be made is a logged 503 "try again", never a page saying
it was done. Responses never say whether an address is on the list; forged,
altered or expired tokens get a 4xx page and change nothing. HEAD is GET without
the body. The endpoints are a WSGI application run by waitress
(:class:`~digest.web.localhttp.WsgiServer`).
"""

from __future__ import annotations

import http
import logging
import queue
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from digest.config import Config
from digest.errors import ConfigError, DigestError, SubscriberError, TokenError
from digest.i18n import gettext_for
from digest.mail.tokens import TokenPayload, load_secret, read_token, stable_hash
from digest.newsletter.catalog import now_in
from digest.subscribers.changes import add_subscriber, find_subscriber, set_sections, set_status, warm_index
from digest.subscribers.model import check_email, parse_sections
from digest.subscribers.reading import list_signature
from digest.templating import render_template
from digest.web.addresslog import AddressTimes
from digest.web.localhttp import WsgiServer
from digest.web.pages import SectionsWithEntries, done_links, section_options, subscribe_form
from digest.web.webhooks import MAX_BODY as WEBHOOK_MAX_BODY
from digest.web.webhooks import webhook_for

__all__ = ["RateLimiter", "SubscriptionServer", "send_confirmation"]

log = logging.getLogger(
    "digest.serve"
)  # request lines and failures: `digest serve` gives them time and level

CONFIRMATIONS_FILE = "confirmations.json"
CHANGES_FILE = "address-changes.json"  # when each address last joined or left through these pages
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


def try_again(_: Callable[..., str]) -> Page:
    """The answer for anything that could not be done just now (always logged too)."""
    return Page(503, _("Cannot handle this just now"), _("Please try again later."))


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds for each key (a client address).

    Memory is bounded whatever the traffic: at most ``max_clients`` keys are
    remembered, least recently seen first to go, each with at most ``limit``
    times; every call is O(limit). Forgetting a client only ever lets it through.
    """

    def __init__(self, limit: int, window: float, max_clients: int = 10_000):
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._events: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def allow(self, key: str, now: float) -> bool:
        with self._lock:
            events = [t for t in self._events.pop(key, ()) if now - t < self.window]
            allowed = len(events) < self.limit
            if allowed:
                events.append(now)
            self._events[key] = events  # now the most recently seen
            while len(self._events) > self.max_clients:
                self._events.popitem(last=False)
            return allowed


class SubscriptionServer(WsgiServer):
    """The self-service endpoints for one newsletter, as a WSGI application on waitress."""

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
        # waitress refuses bodies past this unread; below it, our 413 page (or the webhook's) answers
        self.max_body_bytes = max(2 * config.serve.max_body_bytes, WEBHOOK_MAX_BODY)
        if config.serve.trust_proxy:  # every connection comes from the proxy: it limits its clients
            self.max_per_client = 0
        ttl = config.serve.confirm_ttl_hours * 3600
        # when each address last joined or left here: older confirmation links no longer work
        changes = config.paths.state / CHANGES_FILE
        self.changes = AddressTimes(changes, self.secret, "address", what="the address change log", keep=ttl)
        # Subscription requests are answered at once and handled by this worker, one at a time:
        # the answer never depends on (or waits for) the list or the mail server.
        self.confirmer = _Confirmations(config, self.secret, self._link)
        threading.Thread(target=_keep_index_warm, args=(config,), name="digest-index", daemon=True).start()
        address = (host or config.serve.host, config.serve.port if port is None else port)
        super().__init__(self.application, address)

    def application(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI entry point: one request in, one page out; HEAD is GET without the body."""
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method == "POST" and (webhook := webhook_for(str(environ.get("PATH_INFO", "")))) is not None:
            return _answer_webhook(self.config, webhook, environ, start_response)
        _ = gettext_for(self.config.site.language)
        request = _Request(environ, self.config, _)
        page = request.problem or self._answer("GET" if method == "HEAD" else method, request)
        try:
            body = render_template(
                "web.html.j2", self.config.email.templates, page=page, site=self.config.site
            ).encode("utf-8")
            kind = "text/html; charset=utf-8"
        except DigestError as exc:  # a page template of the editor's that does not render
            log.error("%s %s %s: %s", request.client, method, request.path, exc)
            page = try_again(_)
            body, kind = f"{page.message}\n".encode(), "text/plain; charset=utf-8"
        headers = [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            *SECURITY_HEADERS.items(),
        ]
        status = f"{page.status} {http.HTTPStatus(page.status).phrase}"
        start_response(status, headers)
        # Never log query strings: they carry tokens.
        log.info("%s %s %s %s", request.client, method, request.path, page.status)
        return [b""] if method == "HEAD" else [body]

    def _answer(self, method: str, request: _Request) -> Page:
        """The page for a request; anything that could not be done is a logged 503, never a 200."""
        _ = gettext_for(self.config.site.language)
        if method not in ("GET", "POST"):
            return Page(405, _("Not supported"), _("This kind of request is not supported."))
        try:
            return self.handle(method, request.route, request.query, request.form, request.client)
        except TokenError as exc:
            return Page(
                400, _("Invalid link"), _("%(reason)s. Use the link in your newest mail.", reason=exc.message)
            )
        except (DigestError, OSError) as exc:
            reason = exc if isinstance(exc, DigestError) else f"{exc.strerror or exc} ({exc.filename or '-'})"
            log.error("%s %s %s: 503: %s", request.client, method, request.path, reason)
            return try_again(_)
        except Exception as exc:  # a bug: one line in the log, and the reader is told to try again
            name = exc.__class__.__name__
            log.error("%s %s %s: 503: %s: %s", request.client, method, request.path, name, exc)
            return try_again(_)

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
            try:  # first: no confirmation link mailed before now works after
                self.changes.note(email, now)
            except DigestError as exc:  # leaving must not depend on it: links already used stay used
                log.warning("unsubscribe: %s", exc)
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
            return self._join(payload, now)
        if route == "preferences":
            return self._preferences(method, token, form, now)
        return Page(404, _("Page not found"), _("There is no page at this address."))

    def _join(self, payload: TokenPayload, now: float) -> Page:
        """The confirming POST: join the list, unless the link predates the address's last change.

        A confirmation link stays valid for ``confirm_ttl_hours``; replayed after the
        reader joined with it and then left, it must not subscribe them again.
        """
        _ = gettext_for(self.config.site.language)
        title = self.config.site.title
        welcome = Page(
            200,
            _("Subscribed"),
            _("Welcome! %(email)s will get %(title)s.", email=payload.email, title=title),
        )
        issued = (payload.expires or now) - self.config.serve.confirm_ttl_hours * 3600
        changed = self.changes.last(payload.email)
        if changed is not None and issued <= changed:
            return Page(
                400,
                _("Link used up"),
                _("This confirmation link was already used or replaced; to subscribe again, ask once more."),
            )
        existing = find_subscriber(self.config.paths.subscribers, self._known, payload.email)
        if existing is not None and existing.active:
            return welcome  # already on the list: the same answer either way
        add_subscriber(
            self.config.paths.subscribers,
            self._known,
            payload.email,
            sections=frozenset(payload.sections or ()),
            today=now_in(self.config).date(),
        )  # a SubscriberError here (a line that cannot be read, a race) is a 503: the link still works
        self.changes.note(payload.email, now)  # this link, and any mailed before it, is now used up
        return welcome

    @property
    def _known(self) -> frozenset[str]:
        return self.config.feeds.slugs

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
            self.confirmer.requests.put_nowait((email, sections, now))
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
        self.confirmer.requests.join()

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


class _Confirmations:
    """The background worker that mails confirmation links, at most one per address per window."""

    def __init__(self, config: Config, secret: bytes, link: Callable[..., str]):
        self.config = config
        self.secret = secret
        self.link = link
        self.window = config.serve.confirm_window_minutes * 60
        self.sent = AddressTimes(
            config.paths.state / CONFIRMATIONS_FILE,
            secret,
            "confirm",
            what="the confirmation log",
            keep=self.window,
        )
        self.requests: queue.Queue[tuple[str, frozenset[str], float]] = queue.Queue(maxsize=1000)
        threading.Thread(target=self._run, name="digest-confirm", daemon=True).start()

    def _run(self) -> None:
        while True:
            email, sections, now = self.requests.get()
            try:
                self._confirm_one(email, sections, now)
            except Exception as exc:  # the worker must outlive any one request
                log.warning("confirmation for a subscribe request not sent: %s", exc)
            finally:
                self.requests.task_done()

    def _confirm_one(self, email: str, sections: frozenset[str], now: float) -> None:
        """Mail a confirmation link, unless the address is already on the list or was just sent one."""
        existing = find_subscriber(self.config.paths.subscribers, set(self.config.feeds.section_names), email)
        if existing is not None and existing.active:
            return
        if not self.sent.note(email, now, unless_within=self.window):
            return
        expires = int(now + self.config.serve.confirm_ttl_hours * 3600)
        link = self.link("confirm", email, expires=expires, sections=tuple(sorted(sections)))
        send_confirmation(self.config, self.secret, email, link)


class _Request:
    """What the endpoints need from a WSGI request, read once; ``problem`` when it is refused unread."""

    def __init__(self, environ: dict[str, Any], config: Config, _: Callable[..., str]):
        self._ = _
        self.path = str(environ.get("PATH_INFO", "/"))
        raw_query = str(environ.get("QUERY_STRING", ""))
        self.route = self.path.rstrip("/").rsplit("/", 1)[-1]
        self.query = {k: v[0] for k, v in urllib.parse.parse_qs(raw_query).items()}
        self.client = _client(environ, config)
        self.form: dict[str, list[str]] = {}
        self.problem: Page | None = None
        if len(self.path) + len(raw_query) + 1 > MAX_URL:
            self.problem = Page(414, _("Address too long"), _("The address of the request is too long."))
        elif environ.get("REQUEST_METHOD") == "POST":
            self._read_form(environ, config.serve.max_body_bytes)

    def _read_form(self, environ: dict[str, Any], limit: int) -> None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self.problem = Page(400, self._("Invalid request"), self._("The request is not valid."))
            return
        body = environ["wsgi.input"].read(min(length, limit + 1))
        if length > limit or len(body) > limit:
            self.problem = Page(413, self._("Too long"), self._("What was sent is too long."))
            return
        self.form = _parse_form(str(environ.get("CONTENT_TYPE", "")), body)


def _keep_index_warm(config: Config, every: float = 10.0) -> None:
    """Rebuild the list's lookup index at start and after each hand edit, in the background, so an
    unsubscribe finds its address at once rather than waiting while a long list is read."""
    path, seen = config.paths.subscribers, object()
    while True:
        signature = list_signature(path)
        if signature != seen:
            try:
                warm_index(path, config.feeds.slugs)
            except DigestError as exc:  # a change then rebuilds it itself, or answers 503
                log.warning("subscriber index: %s", exc)
            seen = signature
        time.sleep(every)


def _answer_webhook(
    config: Config, handler: Callable[..., tuple[int, str]], environ: dict[str, Any], start_response: Any
) -> Iterable[bytes]:
    """A mail provider's post (bounces, complaints: digest/web/webhooks.py): raw headers and body in,
    one line of plain text out."""
    length = str(environ.get("CONTENT_LENGTH") or "")
    if length.isdigit() and int(length) <= WEBHOOK_MAX_BODY:
        headers = {k[5:].replace("_", "-"): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = str(environ.get("CONTENT_TYPE", ""))
        try:
            status, text = handler(config, headers, environ["wsgi.input"].read(int(length)))
        except (DigestError, OSError) as exc:  # the list or the record is busy or unreadable: later
            status, text = 503, f"not recorded, try again later: {getattr(exc, 'message', exc)}"
        except Exception as exc:  # a bug: one line in the log, and the sender retries later
            status, text = 503, "not recorded, try again later"
            log.error("webhook %s: %s: %s", environ.get("PATH_INFO", ""), exc.__class__.__name__, exc)
    else:
        status, text = 413, "refused: no Content-Length, or too long"
    body = (text + "\n").encode("utf-8")
    kind = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {http.HTTPStatus(status).phrase}", [*kind, *SECURITY_HEADERS.items()])
    log.info("%s POST %s %s", _client(environ, config), environ.get("PATH_INFO", ""), status)
    return [body]


def _client(environ: dict[str, Any], config: Config) -> str:
    """Who is asking: behind a trusted proxy, the address it saw (the last X-Forwarded-For entry)."""
    if config.serve.trust_proxy:
        forwarded = str(environ.get("HTTP_X_FORWARDED_FOR", ""))
        if forwarded.strip():
            return forwarded.rsplit(",", 1)[-1].strip()
    return str(environ.get("REMOTE_ADDR", "-"))


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
