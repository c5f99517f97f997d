"""One SMTP session's transactions, fast: how replies are read, when the session counts as lost and why.

The reply parser is fed bytes as the socket would hand them over (cut anywhere);
the transactions run against a small scripted server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from mailservers import LoopbackServer

from digest.send.session import Refused, Session, SessionLost, _Replies

KIB32 = 32 * 1024  # a reply longer than this is garbage (written out: the module's constant is under test)
MESSAGE = (b"From: a@example.org\r\n", b"Subject: hi\r\n\r\nline one\r\n")
SENDER, RECIPIENT = b"a@example.org", b"b@example.org"


T = TypeVar("T")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), 10)  # a wait that never ends fails here, not later

    return asyncio.run(bounded())


# -- reading replies ---------------------------------------------------------------------------


def test_replies_are_read_however_the_socket_cuts_them_and_whatever_their_line_endings():
    async def scenario() -> list[tuple[int, str]]:
        replies = _Replies(asyncio.get_running_loop())
        for chunk in (
            b"25",
            b"0 2.1.0 ok\r",
            b"\n250-first\r\n250-second\n",
            b"250 last\r\n251\n",
            b"354 go",
        ):
            replies.data_received(chunk)
        assert replies.lost is None
        return list(replies.ready)

    assert run(scenario) == [(250, "2.1.0 ok"), (250, "first\nsecond\nlast"), (251, "")]


@pytest.mark.parametrize("line", [b"\n", b"hello\r\n", b"25 ok\r\n", b"2x0 ok\r\n"])
def test_a_garbled_reply_loses_the_session_and_says_what_came(line):
    async def scenario() -> _Replies:
        replies = _Replies(asyncio.get_running_loop())
        replies.data_received(line + b"250 ok\r\n")  # nothing after the garbage is believed
        return replies

    replies = run(scenario)
    assert replies.lost == f"a garbled reply from the server: {line!r}"
    assert not replies.ready


def test_a_reply_longer_than_32_kib_is_garbage_but_one_of_32_kib_is_read():
    async def scenario(size: int, end: bytes) -> _Replies:
        replies = _Replies(asyncio.get_running_loop())
        replies.data_received(b"250-" + b"x" * 100 + b"\r\n")  # continuation lines count too
        replies.data_received(b"250 " + b"y" * (size - 104))
        replies.data_received(end)
        return replies

    whole = run(lambda: scenario(KIB32, b"\r\n"))
    assert whole.lost is None
    assert list(whole.ready) == [(250, "x" * 100 + "\n" + "y" * (KIB32 - 104))]
    too_long = run(lambda: scenario(KIB32 + 1, b""))
    assert too_long.lost == "a reply from the server too long to be one"
    assert not too_long.ready


def test_a_waiting_read_wakes_only_when_all_its_replies_are_in_or_the_connection_is_lost():
    async def scenario() -> tuple[bool, str]:
        replies = _Replies(asyncio.get_running_loop())
        waiting = asyncio.ensure_future(replies.take(3, 5))
        await asyncio.sleep(0)  # the read is now waiting
        replies.data_received(b"250 ok\r\n")  # one of three
        await asyncio.sleep(0)
        early = waiting.done()
        replies.connection_lost(ConnectionResetError("reset by peer"))
        with pytest.raises(SessionLost) as lost:
            await waiting
        return early, str(lost.value)

    assert run(scenario) == (False, "connection lost: reset by peer")


def test_the_first_reason_a_session_was_lost_is_the_one_kept():
    async def scenario() -> tuple[str | None, str]:
        replies = _Replies(asyncio.get_running_loop())
        replies.data_received(b"oops\r\n")  # no read waiting: nothing to wake
        replies.connection_lost(None)
        with pytest.raises(SessionLost) as lost:
            await replies.take(1, 5)  # at once: the session is lost already
        return replies.lost, str(lost.value)

    garbled = "a garbled reply from the server: b'oops\\r\\n'"
    assert run(scenario) == (garbled, garbled)


def test_a_closed_connection_is_lost_with_why_and_asks_the_transport_to_close():
    async def scenario() -> tuple[bool | None, str | None]:
        replies = _Replies(asyncio.get_running_loop())
        keep_open = replies.eof_received()
        return keep_open, replies.lost

    assert run(scenario) == (False, "the server closed the connection")


def test_a_silent_server_times_out_with_how_long_it_was_given():
    async def scenario() -> str:
        replies = _Replies(asyncio.get_running_loop())
        with pytest.raises(SessionLost) as lost:
            await replies.take(1, 0.05)
        return str(lost.value)

    assert run(scenario) == "no reply from the server in 0.05s"


def test_an_answered_read_leaves_no_timer_to_cut_the_next_one_short():
    async def scenario() -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        replies = _Replies(loop)
        first = asyncio.ensure_future(replies.take(1, 0.05))
        await asyncio.sleep(0)
        replies.data_received(b"250 first\r\n")
        answered = await first
        loop.call_later(0.2, replies.data_received, b"250 second\r\n")  # after the first read's deadline
        return answered + await replies.take(1, 2)

    assert run(scenario) == [(250, "first"), (250, "second")]


def test_a_loss_or_timeout_in_the_turn_a_read_was_answered_leaves_the_answer():
    async def scenario() -> list[tuple[int, str]]:
        replies = _Replies(asyncio.get_running_loop())
        waiting = asyncio.ensure_future(replies.take(1, 5))
        await asyncio.sleep(0)
        replies.data_received(b"250 ok\r\n")
        replies._time_out(5)  # the timer due in this very turn of the loop
        replies.connection_lost(None)
        return await waiting

    assert run(scenario) == [(250, "ok")]


# -- transactions ------------------------------------------------------------------------------

DEFAULT_REPLIES = {
    "MAIL": b"250 2.1.0 sender ok\r\n",
    "RCPT": b"250 2.1.5 recipient ok\r\n",
    "DATA": b"354 go ahead\r\n",
    "END": b"250 2.0.0 queued as 1A2B\r\n",
    "RSET": b"250 2.0.0 reset\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
}


class ScriptedServer(LoopbackServer):
    """An SMTP peer on 127.0.0.1 answering each command from a table; it records what it read."""

    def __init__(self, replies: dict[str, bytes] | None = None, *, close_on_quit: bool = True):
        self.replies = {**DEFAULT_REPLIES, **(replies or {})}
        self.close_on_quit = close_on_quit
        self.lines: list[bytes] = []
        self.messages: list[bytes] = []
        self.ended = asyncio.Event()  # the client's side of the connection is gone

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self.lines.append(line)
                name = line.split(b" ")[0].strip().decode().upper()
                reply = self.replies.get(name, b"500 5.5.1 unknown\r\n")
                writer.write(reply)
                if name == "DATA" and reply.startswith(b"354"):
                    body = []
                    while (data := await reader.readuntil(b"\r\n")) != b".\r\n":
                        body.append(data)
                    self.messages.append(b"".join(body))
                    writer.write(self.replies["END"])
                await writer.drain()
                if name == "QUIT" and self.close_on_quit:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.ended.set()

    def commands(self) -> list[bytes]:
        return [line.rstrip(b"\r\n") for line in self.lines]


@contextlib.asynccontextmanager
async def session_on(server: ScriptedServer, **options: object) -> AsyncIterator[Session]:
    async with server as port:
        transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
        settings: dict = {"pipelining": True, "size": False, "timeout": 5.0, **options}
        session = Session(transport, **settings)  # type: ignore[arg-type]
        try:
            yield session
        finally:
            session.abort()


@pytest.mark.parametrize("size", [True, False])
def test_a_transaction_says_the_size_only_where_offered_and_returns_the_servers_words(size):
    server = ScriptedServer()

    async def scenario() -> str:
        async with session_on(server, size=size) as session:
            return await session.send(SENDER, RECIPIENT, MESSAGE)

    assert run(scenario) == "2.0.0 queued as 1A2B"
    said = b" SIZE=%d" % sum(map(len, MESSAGE)) if size else b""
    assert server.commands() == [b"MAIL FROM:<a@example.org>" + said, b"RCPT TO:<b@example.org>", b"DATA"]
    assert server.messages == [b"".join(MESSAGE)]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_recipient_the_server_will_forward_251_is_accepted(pipelining):
    server = ScriptedServer({"RCPT": b"251 2.1.5 user not local; will forward\r\n"})

    async def scenario() -> str:
        async with session_on(server, pipelining=pipelining) as session:
            return await session.send(SENDER, RECIPIENT, MESSAGE)

    assert run(scenario) == "2.0.0 queued as 1A2B"
    assert len(server.messages) == 1


def test_without_pipelining_a_refused_recipient_ends_the_transaction_before_data():
    server = ScriptedServer({"RCPT": b"550 5.1.1 no such user\r\n"})

    async def scenario() -> Refused:
        async with session_on(server, pipelining=False) as session:
            with pytest.raises(Refused) as refused:
                await session.send(SENDER, RECIPIENT, MESSAGE)
            return refused.value

    refused = run(scenario)
    assert (refused.stage, refused.code, refused.message) == ("rcpt", 550, "5.1.1 no such user")
    assert [c.split(b" ")[0] for c in server.commands()] == [b"MAIL", b"RCPT"]
    assert server.messages == []


def test_a_reply_said_between_transactions_answers_nothing_of_the_next():
    server = ScriptedServer({"END": b"250 2.0.0 queued\r\n250 and something more\r\n"})

    async def scenario() -> list[str]:
        async with session_on(server) as session:
            return [await session.send(SENDER, RECIPIENT, MESSAGE) for _ in range(2)]

    assert run(scenario) == ["2.0.0 queued", "2.0.0 queued"]
    assert len(server.messages) == 2


def test_a_withheld_message_never_reaches_the_server_and_the_connection_is_dropped():
    server = ScriptedServer()

    async def withhold() -> bool:
        return False

    async def scenario() -> str:
        async with session_on(server) as session:
            with pytest.raises(SessionLost) as lost:
                await session.send(SENDER, RECIPIENT, MESSAGE, withhold())
            assert not session.connected
            await server.ended.wait()  # the server sees the connection end, the transaction open
            return str(lost.value)

    assert run(scenario) == "the message was withheld: the send is stopping"
    assert server.messages == []


def test_a_session_closed_on_our_side_sends_nothing_more():
    server = ScriptedServer()

    async def scenario() -> tuple[str, str]:
        async with session_on(server) as session:
            session.abort()
            with pytest.raises(SessionLost) as before:  # in the same turn: the close not yet reported
                await session.send(SENDER, RECIPIENT, MESSAGE)
        server2 = ScriptedServer()
        async with session_on(server2) as session:

            async def close_meanwhile() -> bool:
                session.abort()
                return True

            with pytest.raises(SessionLost) as during:
                await session.send(SENDER, RECIPIENT, MESSAGE, close_meanwhile())
        assert server2.messages == []
        return str(before.value), str(during.value)

    assert run(scenario) == ("the connection is closed", "the connection is closed")
    assert server.lines == []


def test_a_garbled_reply_leaves_the_session_disconnected():
    server = ScriptedServer({"MAIL": b"hello there\r\n"})

    async def scenario() -> tuple[str, bool]:
        async with session_on(server) as session:
            with pytest.raises(SessionLost) as lost:
                await session.send(SENDER, RECIPIENT, MESSAGE)
            return str(lost.value), session.connected

    assert run(scenario) == ("a garbled reply from the server: b'hello there\\r\\n'", False)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"250 2.0.0 reset\r\n", None),
        (b"502 5.5.1 not now\r\n", "the server refused RSET (502 5.5.1 not now)"),
    ],
)
def test_a_reset_is_checked(reply, expected):
    server = ScriptedServer({"RSET": reply})

    async def scenario() -> str | None:
        async with session_on(server) as session:
            try:
                await session.reset()
            except SessionLost as lost:
                return str(lost)
            return None

    assert run(scenario) == expected


def test_quit_closes_the_connection_even_when_the_server_keeps_it_open():
    server = ScriptedServer(close_on_quit=False)

    async def scenario() -> None:
        async with session_on(server) as session:
            await session.quit()
            assert not session.connected
            await server.ended.wait()

    run(scenario)
    assert server.commands() == [b"QUIT"]
