"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with an ephemeral port and injectable faults."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]

    @property
    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Faults:
    """What the server does wrong, consumed as it happens."""

    reject: set[str] = field(default_factory=set)  # 550 at RCPT for these addresses
    data_replies: list[str] = field(default_factory=list)  # replies to the next DATA commands
    drop_data: int = 0  # close the connection mid-DATA this many times
    delay: float = 0.0  # seconds before answering DATA (a slow server)


class Recorder:
    """The aiosmtpd handler: records every accepted message and applies the faults."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.faults = Faults()
        self.lock = threading.Lock()
        self.reached = threading.Event()
        self.target = 0

    def per_recipient(self) -> Counter[str]:
        with self.lock:
            return Counter(r.rcpt for r in self.received)

    def notify_at(self, count: int) -> threading.Event:
        self.target = count
        self.reached.clear()
        return self.reached

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.faults.reject:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def before_data(self, hook):
        """Await ``hook(session, envelope)`` before each DATA; a reply it returns is sent instead."""
        original = self.handle_DATA

        async def handle(server, session, envelope):
            reply = await hook(session, envelope)
            return reply if reply is not None else await original(server, session, envelope)

        self.handle_DATA = handle

    async def handle_DATA(self, server, session, envelope):
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self.faults.drop_data > 0:
            self.faults.drop_data -= 1
            server.transport.close()
            return "421 4.3.0 dropped"
        if self.faults.data_replies:
            return self.faults.data_replies.pop(0)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append(Received(envelope.mail_from, rcpt.lower(), envelope.content))
            if self.target and len(self.received) >= self.target:
                self.reached.set()
        return "250 2.0.0 Queued"


class _Controller(Controller):
    """aiosmtpd's Controller, bound to port 0: learns its real port before it is first used."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def tls_context(cert) -> ssl.SSLContext:
    """A server-side TLS context with a trustme certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@contextlib.contextmanager
def running_server(**options):
    """An aiosmtpd server for the duration of a ``with`` block: (controller, recorder)."""
    controller, recorder = start_server(**options)
    try:
        yield controller, recorder
    finally:
        controller.stop()


def start_server(**options) -> tuple[_Controller, Recorder]:
    recorder = Recorder()
    controller = _Controller(recorder, hostname="127.0.0.1", port=0, **options)
    controller.start()
    return controller, recorder


def password_authenticator(user: str, password: str):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate
