"""MIME messages for each subscriber, built fast from parts rendered once per variant.

Building an ``EmailMessage`` per recipient costs milliseconds; here the headers
that are the same for everyone are encoded once, and each message only adds its
recipient's headers and base64-encodes its two filled-in parts. The result is a
strict RFC 5322 message: multipart/alternative (text, then HTML), UTF-8, base64
lines of 76 octets, RFC 2047 encoded words, a deterministic Message-ID per
(issue, subscriber), List-Id, and List-Unsubscribe with RFC 8058 one-click.

CR or LF in any name, subject or address is refused: it is how header
injection works.
"""

from __future__ import annotations

import base64
import email.utils
import re
from dataclasses import dataclass
from email.header import Header
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from digest.config import Config
from digest.errors import DigestError, HeaderError
from digest.i18n import gettext_for
from digest.mail.render import RenderedDigest
from digest.mail.tokens import TokenPayload, make_token, message_id_digest, stable_hash
from digest.mail.verp import TOKEN_FIELD, return_path_for
from digest.newsletter.model import Issue

__all__ = [
    "CRLF",
    "MessageFactory",
    "Outgoing",
    "check_address",
    "check_header_value",
    "encode_phrase",
    "encode_text",
    "format_mailbox",
    "parse_sender",
    "subscriber_link",
]

CRLF = "\r\n"
DKIM_HEADERS = [
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Id",
    b"List-Unsubscribe", b"List-Unsubscribe-Post", b"MIME-Version", b"Content-Type",
]  # fmt: skip
MAX_LINE = 76  # folded header lines; keeps every RFC 2047 encoded-word within its 75 characters
# Structure only (the list is checked by email-validator when read): no spaces, no brackets or
# separators that would let a value break out of its header, and a dotted domain.
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_PART_HEADERS = {  # each body part's own headers, then the blank line before its base64
    subtype: b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n' % subtype
    for subtype in (b"plain", b"html")
}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")  # CR, LF, NUL and the other controls but tab
_URL_PLAIN = re.compile(r"[A-Za-z0-9_.~ -]*")  # text that percent-encoding leaves alone but its spaces
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ .-]*$")


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the transport."""

    recipient: str
    message_id: str
    parts: tuple[bytes, ...]  # the message, in pieces sent one after the other (the big ones shared)

    @property
    def data(self) -> bytes:
        """On the wire's terms: CRLF line endings, no line starting with a dot (SMTP sends it as is)."""
        return b"".join(self.parts)


def check_header_value(value: str, what: str) -> str:
    """Refuse CR, LF and other control characters in a value bound for a header."""
    if _CONTROL.search(value):
        raise HeaderError(f"{what} contains a line break or control character: {value[:60]!r}")
    return value


def check_address(address: str, what: str) -> str:
    check_header_value(address, what)
    if not _ADDRESS.match(address):
        raise HeaderError(f"{what} is not a valid email address: {address!r}")
    return address


def parse_sender(value: str) -> tuple[str, str]:
    """``Name <addr>`` or ``addr`` from ``[email] from``, checked."""
    check_header_value(value, "[email] from")
    name, address = email.utils.parseaddr(value)
    if not address:
        raise HeaderError("[email] from is empty: set it to 'Name <address@example.org>'")
    return name, check_address(address, "[email] from")


def encode_phrase(name: str, header_name: str) -> str:
    """A display name, quoted when ASCII and RFC 2047 encoded-words when not."""
    if not name:
        return ""
    if _ATEXT_PHRASE.match(name):
        return name if re.fullmatch(r"[A-Za-z0-9 ]*", name) else email.utils.quote(name).join('""')
    data = name.encode("utf-8")
    # A name that fits one encoded-word on the header's first line (most do) is that word, as
    # email.header would write it; building a Header costs about 30 µs, a subscriber at a time.
    if 12 + 4 * -(-len(data) // 3) <= MAX_LINE - len(header_name) - 2:
        return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="
    return Header(name, "utf-8", maxlinelen=MAX_LINE, header_name=header_name).encode(linesep=CRLF)


def encode_text(value: str, header_name: str) -> str:
    """An unstructured header (Subject), folded, encoded when not ASCII."""
    charset = "us-ascii" if value.isascii() else "utf-8"
    return Header(value, charset, maxlinelen=MAX_LINE, header_name=header_name).encode(linesep=CRLF)


def format_mailbox(name: str, address: str, header_name: str) -> str:
    """``Name <address>`` with the name encoded as a header needs it."""
    phrase = encode_phrase(name, header_name)
    return f"{phrase} <{address}>" if phrase else address


def list_id(config: Config) -> str:
    """``<embedded-ai-report.example.org>`` from ``[site] base_url``."""
    parts = urlsplit(config.site.base_url)
    path = [p for p in parts.path.split("/") if p]
    label = ".".join([*reversed(path), parts.hostname or "localhost"])
    label = re.sub(r"[^A-Za-z0-9.-]", "-", label)
    return f"{encode_phrase(config.site.title, 'List-Id')} <{label}>".strip()


@dataclass
class MessageFactory:
    """Every subscriber's message for one issue; the shared headers are encoded once."""

    issue: Issue
    config: Config
    secret: bytes
    date: str  # RFC 5322 date, for every message of this send
    round: int = 1  # a deliberate resend is a new message, with a new Message-ID

    def __post_init__(self) -> None:
        email_cfg = self.config.email
        self.sender_name, self.sender = parse_sender(email_cfg.sender)
        self.domain = self.sender.rsplit("@", 1)[1]
        self.from_header = format_mailbox(self.sender_name, self.sender, "From")
        self.list_id = list_id(self.config)
        if email_cfg.unsubscribe_mailto:
            check_address(
                email_cfg.unsubscribe_mailto.replace(TOKEN_FIELD, "t"), "[email] unsubscribe_mailto"
            )
        if not (email_cfg.unsubscribe_url or email_cfg.base_url or email_cfg.unsubscribe_mailto):
            raise HeaderError(
                "set [email] unsubscribe_url (or base_url) or unsubscribe_mailto: "
                "every digest needs a way out"
            )
        self.reply_to = check_address(email_cfg.reply_to, "[email] reply_to") if email_cfg.reply_to else ""
        self._subjects: dict[tuple[str, bool], str] = {}
        dkim_cfg = email_cfg.dkim
        self._dkim_key = _read_dkim_key(dkim_cfg.key_file) if dkim_cfg is not None else b""

    def message_id(self, address: str) -> str:
        return f"<{message_id_digest(self.secret, self.issue.key, address, self.round)}@{self.domain}>"

    def return_path(self, address: str) -> str:
        """The envelope sender (MAIL FROM) for one recipient: ``[email] return_path``, else From."""
        template = self.config.email.return_path
        return return_path_for(template, self.sender, self.secret, self.issue.key, address)

    def mailto(self, address: str) -> str:
        """``[email] unsubscribe_mailto``, with a ``{token}`` in it naming the recipient."""
        template = self.config.email.unsubscribe_mailto
        return return_path_for(template, template, self.secret, self.issue.key, address, "unsubscribe")

    def mailto_subject(self, address: str) -> str:
        """The subject of a mailed unsubscribe: the reader's signed token, unless the address carries one."""
        if TOKEN_FIELD in self.config.email.unsubscribe_mailto:
            return "unsubscribe"
        return "unsubscribe " + make_token(self.secret, TokenPayload(address.lower(), "unsubscribe"))

    def links(self, address: str) -> dict[str, str]:
        """The subscriber's own unsubscribe and preference links."""
        unsubscribe = subscriber_link(self.config, self.secret, "unsubscribe", address)
        if not unsubscribe and self.config.email.unsubscribe_mailto:
            unsubscribe = f"mailto:{self.mailto(address)}?subject={_quote(self.mailto_subject(address))}"
        preferences = subscriber_link(self.config, self.secret, "preferences", address)
        return {"email": address, "unsubscribe_url": unsubscribe, "preferences_url": preferences}

    def build(self, address: str, name: str, digest: RenderedDigest, *, test: bool = False) -> Outgoing:
        """The full message for one recipient, CRLF line endings, ready for SMTP."""
        check_address(address, "subscriber address")
        check_header_value(name, "subscriber name")
        values = self.links(address)
        values["name"] = name
        html, text = digest.personalise_base64(values)
        message_id = self.message_id(address)
        boundary = f"=_digest_{stable_hash(self.secret, 'boundary', message_id)[:24]}"
        headers = [
            f"From: {self.from_header}",
            f"To: {format_mailbox(name, address, 'To')}",
            f"Subject: {self._subject(digest.subject, test)}",
            f"Date: {self.date}",
            f"Message-ID: {message_id}",
            f"List-Id: {self.list_id}",
            *self._unsubscribe_headers(values["unsubscribe_url"], address),
            *([f"Reply-To: {self.reply_to}"] if self.reply_to else []),
            "Precedence: bulk",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
        ]
        head = CRLF.join(headers)
        # Dot-safe by construction: header lines start with a name, folded ones with a space, the
        # parts with "--" or base64; so SMTP sends these bytes without stuffing (see transport).
        assert not head.startswith(".") and "\n." not in head, "a header line starts with a dot"
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        # The variant's own bytes (each part's text before its first field, encoded once) are
        # shared by every message, not copied into one: the transport writes the pieces as they are.
        parts = (
            b"".join((head.encode("ascii"), b"\r\n", delimiter, _PART_HEADERS[b"plain"])),
            text[0],
            b"".join((text[1], delimiter, _PART_HEADERS[b"html"])),
            html[0],
            b"".join((html[1], delimiter[:-2], b"--\r\n")),
        )
        if self.config.email.dkim is not None:
            parts = (self._dkim_signature(b"".join(parts)), *parts)
        return Outgoing(address, message_id, parts)

    def _subject(self, subject: str, test: bool) -> str:
        key = (subject, test)
        if key not in self._subjects:
            check_header_value(subject, "subject")
            if test:
                _ = gettext_for(self.config.site.language)
                subject = _("[TEST] %(subject)s", subject=subject)
            self._subjects[key] = encode_text(subject, "Subject")
        return self._subjects[key]

    def _unsubscribe_headers(self, url: str, address: str) -> list[str]:
        targets = []
        if url.startswith("https://"):
            targets.append(f"<{url}>")
        if self.config.email.unsubscribe_mailto:
            targets.append(f"<mailto:{self.mailto(address)}?subject={_quote(self.mailto_subject(address))}>")
        if not targets:
            return []
        headers = ["List-Unsubscribe: " + f",{CRLF} ".join(targets)]
        if url.startswith("https://"):
            headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        return headers

    def _dkim_signature(self, data: bytes) -> bytes:
        try:
            import dkim
        except ImportError:
            raise DigestError(
                "[email.dkim] is set but dkimpy is not installed: pip install 'digest[dkim]'"
            ) from None
        cfg = self.config.email.dkim
        assert cfg is not None
        return dkim.sign(
            data,
            cfg.selector.encode(),
            cfg.domain.encode(),
            self._dkim_key,
            include_headers=DKIM_HEADERS,
            linesep=b"\r\n",
        )


def _quote(text: str) -> str:
    """``urllib.parse.quote``, without its per-character pass over plain text (a token, a word)."""
    return text.replace(" ", "%20") if _URL_PLAIN.fullmatch(text) else quote(text)


def _read_dkim_key(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DigestError(f"cannot read the DKIM key: {exc.strerror or exc}", path=str(path)) from None


def subscriber_link(config: Config, secret: bytes, route: str, address: str, **token: Any) -> str:
    """A signed link to one of ``digest serve``'s pages for ``address``; "" when there is no such page.

    ``route`` is the page (``unsubscribe``, ``preferences``, ``confirm``) and the
    token's purpose; ``[email] unsubscribe_url`` overrides the unsubscribe page.
    """
    email_cfg = config.email
    if route == "unsubscribe" and email_cfg.unsubscribe_url:
        base = email_cfg.unsubscribe_url
    elif email_cfg.base_url:
        base = f"{email_cfg.base_url}{route}"
    else:
        return ""
    signed = make_token(secret, TokenPayload(address, route, **token))
    return f"{base}{'&' if '?' in base else '?'}token={signed}"
