"""Mail transports: SMTP (aiosmtplib, STARTTLS or implicit TLS) and a local Maildir.

``[email] transport`` picks one: ``smtp://host:port`` (STARTTLS when the server
offers it; ``[email] starttls = "required"`` to insist, ``"off"`` never),
``smtps://host:port`` (implicit TLS) or ``maildir:PATH``. The password comes
from ``$DIGEST_SMTP_PASSWORD``; certificates are always verified, against
``[email] ca_file`` when set.

A :class:`Connection` sends many messages; its errors are sorted into what the
sender should do next (see :class:`SendFailure`; server replies by the table in
:mod:`digest.send.replies`). A password is never sent over a connection without
TLS unless ``starttls = "off"`` says so on purpose.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from digest.config import Config, parse_transport
from digest.errors import TransportError
from digest.fsutil import fsync_directory
from digest.send.replies import Decision, classify, reply_text
from digest.send.session import Refused, Session, SessionLost

if TYPE_CHECKING:
    import aiosmtplib

__all__ = [
    "PASSWORD_ENV",
    "Connection",
    "MaildirConnection",
    "SendFailure",
    "SmtpConnection",
    "TransportSpec",
    "nowhere_note",
    "send_one",
    "transport_spec",
]

PASSWORD_ENV = "DIGEST_SMTP_PASSWORD"
NOWHERE = "a folder on this machine, nobody was mailed"
_KINDS = {
    Decision.MAILBOX: "mailbox",
    Decision.REFUSED: "refused",
    Decision.RETRY: "temporary",
    Decision.SENDER: "pause",
}


class SendFailure(TransportError):
    """Why one message was not accepted, and what to do about it.

    ``kind``: ``mailbox`` (this recipient's address or mailbox is refused for
    good), ``refused`` (a permanent refusal that names no cause), ``pause`` (a
    reply about the sender: a quota, a rate, a policy; the same would come for
    everyone), ``temporary`` (4xx, timeout, dropped connection: retry later,
    reconnecting if ``reconnect``), ``session_end`` (a 421 that ends a session
    which has delivered: reconnect and go on at once), ``connect`` (could not connect: counts
    towards ``max_errors``), ``fatal`` (authentication or TLS: stop the whole
    send, nothing will work until the config is fixed). The message carries the
    server's reply code once, where there is one.
    """

    def __init__(self, kind: str, code: int | None, message: str, *, reconnect: bool = False):
        self.kind = kind
        self.reconnect = reconnect
        super().__init__(message, code=code)

    def __str__(self) -> str:
        return self.message


class Connection(Protocol):
    async def connect(self) -> None: ...
    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes | Sequence[bytes],
        *,
        prepared: bool = False,
        before_end: Awaitable[bool] | None = None,
    ) -> tuple[int, str]: ...
    async def close(self) -> None: ...
    @property
    def connected(self) -> bool: ...


@dataclass(frozen=True)
class TransportSpec:
    """A parsed ``[email] transport``; :meth:`connection` opens a new connection object."""

    scheme: str
    host: str = ""
    port: int = 0
    maildir: Path | None = None
    starttls: str = "auto"
    username: str = ""
    ca_file: Path | None = None
    timeout: float = 30.0

    def connection(self) -> Connection:
        if self.scheme == "maildir":
            assert self.maildir is not None
            return MaildirConnection(self.maildir)
        return SmtpConnection(self)

    @property
    def on_this_machine(self) -> bool:
        """A relay at a loopback address (``localhost``, ``127.0.0.1``, ``::1``): it shares the cores."""
        if self.scheme == "maildir":
            return False
        host = self.host.strip("[]").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def describe(self) -> str:
        return (
            f"the Maildir {self.maildir} ({NOWHERE})"
            if self.scheme == "maildir"
            else f"{self.scheme}://{self.host}:{self.port}"
        )


def nowhere_note(config: Config) -> str:
    """``"; into the Maildir …: nobody was mailed"`` for a transport that delivers nowhere real, else ""."""
    spec = transport_spec(config)
    return f"; into the Maildir {spec.maildir} only: {NOWHERE}" if spec.scheme == "maildir" else ""


def transport_spec(config: Config) -> TransportSpec:
    """How to reach ``[email] transport`` (checked when the config was loaded)."""
    email = config.email
    address = parse_transport(email.transport)
    if address.scheme == "maildir":
        return TransportSpec("maildir", maildir=config.root / address.path)
    return TransportSpec(
        address.scheme,
        host=address.host,
        port=address.port,
        starttls=email.starttls,
        username=email.username,
        ca_file=email.ca_file,
        timeout=email.timeout,
    )


def send_one(config: Config, sender: str, recipient: str, data: bytes) -> str:
    """Deliver one message outside any send (a test copy, a confirmation); returns the server's receipt.

    Raises :class:`SendFailure` when it is not accepted.
    """
    import asyncio

    spec = transport_spec(config)

    async def deliver() -> tuple[int, str]:
        connection = spec.connection()
        try:
            await connection.connect()
            return await connection.send(sender, recipient, data)
        finally:
            await connection.close()

    code, reply = asyncio.run(deliver())
    return f"via {spec.describe()}: {code} {reply}".strip()


class SmtpConnection:
    """One SMTP session, reused for many messages.

    aiosmtplib opens it (greeting, EHLO, STARTTLS, AUTH); a :class:`Session`
    then sends the messages on it, pipelined where the server offers it.
    """

    def __init__(self, spec: TransportSpec):
        self.spec = spec
        self._session: Session | None = None
        self._delivered = 0  # messages accepted in this session

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.connected

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.spec.scheme == "smtp" and self.spec.starttls == "off":
            return None
        return _tls_context(self.spec.ca_file)

    async def connect(self) -> None:
        import aiosmtplib

        spec = self.spec
        implicit = spec.scheme == "smtps"
        start_tls = None if spec.starttls == "auto" else spec.starttls == "required"
        smtp = aiosmtplib.SMTP(
            hostname=spec.host,
            port=spec.port,
            use_tls=implicit,
            start_tls=False if implicit else start_tls,
            tls_context=self._tls_context(),
            timeout=spec.timeout,
        )
        try:
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:  # so the extensions are known before the first MAIL
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await smtp.helo()
            if spec.username:
                await self._login(smtp)
        except SendFailure:
            raise
        except Exception as exc:
            raise _classify_connect(exc, spec) from None
        protocol = smtp.protocol
        if protocol is None or protocol.transport is None:
            raise SendFailure("connect", None, f"{spec.host}:{spec.port} closed the session at once")
        self._session = Session(
            protocol.transport,  # the TLS one after STARTTLS
            pipelining=smtp.supports_extension("pipelining"),
            size=smtp.supports_extension("size"),
            timeout=spec.timeout,
        )
        self._delivered = 0

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        """AUTH only over TLS (implicit or STARTTLS), unless ``starttls = "off"`` allows it in the clear."""
        spec = self.spec
        problem = None
        if smtp.get_transport_info("sslcontext") is None and spec.starttls != "off":
            problem = (
                f"{spec.host}:{spec.port} does not offer STARTTLS, so the password for {spec.username} "
                'was not sent: use a server with STARTTLS or smtps://, or set [email] starttls = "off" '
                "to log in without TLS on purpose"
            )
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            problem = f"[email] username is set but ${PASSWORD_ENV} is not"
        if problem is not None:
            with contextlib.suppress(Exception):
                await smtp.quit()
            raise SendFailure("fatal", None, problem)
        await smtp.login(spec.username, password)

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes | Sequence[bytes],
        *,
        prepared: bool = False,
        before_end: Awaitable[bool] | None = None,
    ) -> tuple[int, str]:
        """One transaction; the server's 250 for the message, or :class:`SendFailure`.

        ``before_end``: see :meth:`Session.send`.

        ``prepared``: ``data`` (bytes, or pieces sent one after the other) is
        CRLF and dot-safe already, as :class:`MessageFactory` builds it: a
        header line starts with its name or a space, a part with ``--`` or
        base64, so no line starts with a dot. Otherwise it is made so here.
        """
        if self._session is None:
            await self.connect()
        session = self._session
        assert session is not None
        if not prepared:
            data = (_on_the_wire(data if isinstance(data, bytes) else b"".join(data)),)
        elif isinstance(data, bytes):
            data = (data,)
        try:
            # The addresses were checked when the message was built (and the list read): plain
            # mailboxes, no brackets or spaces, so the commands are written as they are.
            reply = await session.send(sender.encode(), recipient.encode(), data, before_end)
        except Refused as refused:
            failure = await self._refusal(refused.code, refused.message, sender)
            if refused.stage == "mail" and failure.kind in ("mailbox", "refused"):  # about the sender
                reply_ = reply_text(refused.code, refused.message)
                failure = SendFailure(
                    "pause", refused.code, f"the server refuses the sender {sender} ({reply_})"
                )
            raise failure from None
        except (SessionLost, OSError) as exc:  # dropped, timed out, garbled
            await self._drop()
            raise SendFailure("temporary", None, _describe(exc), reconnect=True) from None
        self._delivered += 1
        return 250, reply

    async def _refusal(self, code: int, message: str, sender: str) -> SendFailure:
        """What a refusal means, once the session is reset (or dropped, after a 421).

        A 421 on a session that has delivered is the server ending it ("too many
        messages"): a new session goes on. Only a fresh session refused at once
        says something about the sender. A refusal of a recipient that names the
        sender's address is about the sender, whatever its code says.
        """
        delivered, reply = self._delivered, reply_text(code, message)
        if code == 421:
            await self._drop()
            if delivered:
                why = f"the server ended the session after {delivered} messages ({reply})"
                return SendFailure("session_end", code, why, reconnect=True)
        else:
            await self._reset()
        failure = _reply_failure(code, message)
        if failure.kind in ("mailbox", "refused") and sender.lower() in message.lower():
            return SendFailure("pause", code, f"the server refuses the sender {sender} ({reply})")
        return failure

    async def _reset(self) -> None:
        """RSET after a refused transaction, so the next message starts clean."""
        if self._session is None:
            return
        try:
            await self._session.reset()
        except (SessionLost, OSError):
            await self._drop()

    async def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.abort()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.quit()


def _on_the_wire(data: bytes) -> bytes:
    """CRLF line endings, ending in one, and dots doubled at the start of a line (RFC 5321 4.5.2)."""
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data))


@functools.cache
def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """One verifying context per CA file: loading the system store costs milliseconds."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _reply_failure(code: int, message: str) -> SendFailure:
    """A refusal, sorted by :func:`digest.send.replies.classify`; 421 also closes the connection."""
    verdict = classify(code, message)
    kind = _KINDS[verdict.decision]
    text = f"{verdict.why} ({verdict.reply})" if kind == "pause" else verdict.reply
    return SendFailure(kind, code, text, reconnect=code == 421)


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return " ".join(text.split())


def _classify_connect(exc: Exception, spec: TransportSpec) -> SendFailure:
    import aiosmtplib

    where = f"{spec.host}:{spec.port}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendFailure(
            "fatal",
            exc.code,
            f"{where} refused the login for {spec.username}: check ${PASSWORD_ENV} "
            f"({reply_text(exc.code, exc.message)})",
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(cause, ssl.SSLCertVerificationError):
        detail = (
            getattr(exc, "verify_message", None) or getattr(cause, "verify_message", None) or _describe(exc)
        )
        return SendFailure(
            "fatal", None, f"TLS certificate of {where} is not trusted ({detail}); set [email] ca_file"
        )
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        return SendFailure("fatal", None, f"TLS with {where} failed: {_describe(exc)}")
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        return SendFailure(
            "fatal", None, f'{where} does not offer STARTTLS, and [email] starttls = "required"'
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600:
        return SendFailure(
            "fatal", exc.code, f"{where} refused the session ({reply_text(exc.code, exc.message)})"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        verdict = classify(exc.code, exc.message)
        if verdict.decision is Decision.SENDER:  # a fresh session refused at once for the sender's sake
            why = f"{where} refused a new session: {verdict.why} ({verdict.reply})"
            return SendFailure("pause", exc.code, why)
    if isinstance(exc, socket.gaierror):
        return SendFailure("connect", None, f"cannot resolve {spec.host}: {_describe(exc)}")
    return SendFailure("connect", getattr(exc, "code", None), f"cannot connect to {where}: {_describe(exc)}")


class MaildirConnection:
    """Delivers into a Maildir (``new/``): what a local MTA or mail client picks up."""

    def __init__(self, root: Path):
        self.root = root
        self._counter = 0
        self._ready = False
        self._host = socket.gethostname().replace("/", "_")

    @property
    def connected(self) -> bool:
        return self._ready

    async def connect(self) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SendFailure(
                "fatal", None, f"cannot create the Maildir {self.root}: {exc.strerror}"
            ) from None
        self._ready = True

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes | Sequence[bytes],
        *,
        prepared: bool = False,
        before_end: Awaitable[bool] | None = None,
    ) -> tuple[int, str]:
        if before_end is not None and not await before_end:
            raise SendFailure("temporary", None, "the message was withheld: the send is stopping")
        if not isinstance(data, bytes | bytearray):
            data = b"".join(data)
        if not self._ready:
            await self.connect()
        self._counter += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._counter}.{self._host}"
        tmp, new = self.root / "tmp" / name, self.root / "new" / name
        envelope = f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode()
        try:
            with open(tmp, "xb") as handle:
                handle.write((envelope + data).replace(b"\r\n", b"\n"))
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, new)
            fsync_directory(new.parent)
        except OSError as exc:
            raise SendFailure(
                "fatal", None, f"cannot write to the Maildir {self.root}: {exc.strerror}"
            ) from None
        return 250, f"delivered to {new.name}"

    async def close(self) -> None:
        self._ready = False
