"""The mail transactions of one SMTP session, pipelined where the server offers it (RFC 2920).

aiosmtplib opens the session (greeting, EHLO, STARTTLS, AUTH); then a
:class:`Session` takes its transport over and sends every message on it. With
PIPELINING, MAIL, RCPT and DATA go out in one write and the message's bytes,
its final dot included, in another (``writelines`` of the shared buffers, no
joined copy): two writes and two waits for the server a message instead of
five and four. Every reply is read and checked; a message counts as accepted
only on the 250 that answers its final dot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence

__all__ = ["Refused", "Session", "SessionLost"]

MAX_REPLY = 32 * 1024  # a reply (with its continuation lines) longer than this is garbage
DOT = b".\r\n"
_STAGES = ("mail", "rcpt", "data")
_ACCEPTED = ((250,), (250, 251), (354,))  # what each of MAIL, RCPT and DATA should get


class SessionLost(Exception):
    """The connection dropped, timed out or spoke garbage: retry on a new one."""


class Refused(Exception):
    """The server refused a step of a transaction: ``stage`` is ``mail``, ``rcpt`` or ``data``."""

    def __init__(self, stage: str, code: int, message: str):
        super().__init__(stage, code, message)
        self.stage, self.code, self.message = stage, code, message


class _Replies(asyncio.Protocol):
    """Parses the server's replies as they come, and wakes the one waiter when enough are in."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._buffer = bytearray()
        self.ready: deque[tuple[int, str]] = deque()
        self._lines: list[bytes] = []  # the lines so far of a reply with continuation lines
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self.lost: str | None = None

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start : end + 1])
            start = end + 1
            if len(line) < 4 or not line[:3].isdigit():
                self._lose(f"a garbled reply from the server: {line[:60]!r}")
                return
            self._lines.append(line[4:].strip())
            if line[3:4] != b"-":
                text = b"\n".join(self._lines).decode("utf-8", "surrogateescape")
                self.ready.append((int(line[:3]), text))
                self._lines = []
        del buffer[:start]
        if len(buffer) + sum(map(len, self._lines)) > MAX_REPLY:
            self._lose("a reply from the server too long to be one")
            return
        if self._waiter is not None and len(self.ready) >= self._wanted and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._lose("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost: {exc}" if exc else "the server closed the connection")

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(SessionLost(self.lost))

    def _time_out(self, timeout: float) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(SessionLost(f"no reply from the server in {timeout:g}s"))

    async def take(self, count: int, timeout: float) -> list[tuple[int, str]]:
        """The next ``count`` replies, in order; :class:`SessionLost` when they do not come."""
        if len(self.ready) < count:
            if self.lost is not None:
                raise SessionLost(self.lost)
            self._waiter, self._wanted = self._loop.create_future(), count
            timer = self._loop.call_later(timeout, self._time_out, timeout)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        return [self.ready.popleft() for _ in range(count)]


def _already(before_end: Awaitable[bool]) -> bool:
    """``before_end`` is a future already settled True: nothing to wait for before the dot."""
    return isinstance(before_end, asyncio.Future) and before_end.done() and before_end.result()


class Session:
    """Message transactions on an open, greeted session's transport (taken over from aiosmtplib)."""

    def __init__(self, transport: asyncio.Transport, *, pipelining: bool, size: bool, timeout: float):
        self._transport = transport
        self._replies = _Replies(asyncio.get_running_loop())
        transport.set_protocol(self._replies)
        self.pipelining = pipelining
        self.size = size
        self.timeout = timeout

    @property
    def connected(self) -> bool:
        return self._replies.lost is None and not self._transport.is_closing()

    async def send(
        self,
        sender: bytes,
        recipient: bytes,
        parts: Sequence[bytes],
        before_end: Awaitable[bool] | None = None,
    ) -> str:
        """One transaction for a message already on the wire's terms (CRLF, dot-safe); the 250's text.

        ``before_end`` is awaited once the server has said 354 and the message has
        gone, before its final dot (the previous outcome made durable meanwhile):
        a server delivers nothing it has not seen the end of, so the body can
        travel while the disk works. False withholds the end and drops the
        connection, and the server discards what it got. A future already True
        by the 354 lets the body and its dot go in one write. Raises :class:`Refused`
        (the session is still usable after :meth:`reset`) or :class:`SessionLost`.
        """
        self._replies.ready.clear()  # anything said between transactions answers nothing of this one
        size = b" SIZE=%d" % sum(map(len, parts)) if self.size else b""
        commands = (b"MAIL FROM:<%s>%s\r\n" % (sender, size), b"RCPT TO:<%s>\r\n" % recipient, b"DATA\r\n")
        if self.pipelining:
            self._write(b"".join(commands))
            replies = await self._replies.take(3, self.timeout)
        else:  # a command at a time, up to the first refusal
            replies = []
            for command in commands:
                self._write(command)
                replies += await self._replies.take(1, self.timeout)
                if replies[-1][0] not in (250, 251, 354):
                    break
        refusals = [
            Refused(stage, *reply)
            for stage, reply, accepted in zip(_STAGES, replies, _ACCEPTED, strict=False)
            if reply[0] not in accepted
        ]
        if refusals:
            if replies[-1][0] == 354:  # DATA was taken with nobody to mail: an empty message ends it
                await self._finish(DOT)
            raise refusals[0]
        if before_end is None or _already(before_end):  # the body and its dot in one write
            code, text = await self._finish(*parts, DOT)
        else:
            self._check()
            self._transport.writelines(parts)
            if not await before_end:
                self.abort()  # the message never ends, so the server discards it
                raise SessionLost("the message was withheld: the send is stopping")
            code, text = await self._finish(DOT)
        if code != 250:
            raise Refused("data", code, text)
        return text

    async def _finish(self, *parts: bytes) -> tuple[int, str]:
        self._check()
        self._transport.writelines(parts)
        return (await self._replies.take(1, self.timeout))[0]

    def _write(self, data: bytes) -> None:
        self._check()
        self._transport.write(data)

    def _check(self) -> None:
        if not self.connected:
            raise SessionLost(self._replies.lost or "the connection is closed")

    async def reset(self) -> None:
        """RSET after a refused transaction, so the next message starts clean."""
        self._write(b"RSET\r\n")
        code, text = (await self._replies.take(1, self.timeout))[0]
        if code != 250:
            raise SessionLost(f"the server refused RSET ({code} {text})")

    async def quit(self) -> None:
        """QUIT, politely; the connection is closed whatever the server says."""
        try:
            if self.connected:
                self._write(b"QUIT\r\n")
                await self._replies.take(1, min(self.timeout, 5.0))
        except SessionLost:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        self._transport.close()
