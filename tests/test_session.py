"""SMTP transactions pipelined where the server offers PIPELINING (RFC 2920), against a real socket.

The server here answers a pipelined group only once it has read all of it, as a
strict RFC 2920 server may: a client that waited for each reply before sending
the next command would never get one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from mailservers import LoopbackServer

from digest.send.transport import SendFailure, SmtpConnection, TransportSpec

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nline one\r\nline two\r\n"
Replies = Callable[[str, bytes], bytes]  # (command, argument) -> reply line(s)


def _accept(command: str, argument: bytes) -> bytes:
    return b"354 go ahead\r\n" if command == "DATA" else b"250 ok\r\n"


class PipeliningServer(LoopbackServer):
    """A small SMTP server on 127.0.0.1 that holds its replies until it has read the whole group."""

    def __init__(self, reply: Replies | None = None, pipelining: bool = True):
        self.reply = reply or _accept
        self.pipelining = pipelining
        self.messages: list[bytes] = []
        self.commands: list[str] = []
        self.ended = asyncio.Event()  # a session has ended (its client gone)
        self.received = bytearray()  # the data of the message being read, as it arrives
        self.arrived = asyncio.Event()  # set whenever some of it arrives

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        held: list[bytes] = []
        try:
            while line := await reader.readline():
                command, _, argument = line.rstrip(b"\r\n").partition(b" ")
                name = command.decode().upper()
                self.commands.append(name)
                if name == "EHLO":
                    extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                    writer.write(b"250-test\r\n" + extensions + b"250 SIZE 10000000\r\n")
                elif name == "QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                elif name in ("MAIL", "RCPT"):
                    held.append(self.reply(name, argument))
                elif name == "DATA":
                    start = self.reply(name, argument)
                    writer.writelines([*held, start])
                    held = []
                    if start.startswith(b"354"):
                        lines = []
                        self.received.clear()
                        while (data := await reader.readuntil(b"\r\n")) != b".\r\n":
                            lines.append(data)
                            self.received += data
                            self.arrived.set()
                        self.messages.append(b"".join(lines))
                        writer.write(self.reply("END", self.messages[-1]))
                else:
                    writer.writelines([*held, self.reply(name, argument)])
                    held = []
                if not self.pipelining and held:
                    writer.writelines(held)
                    held = []
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away mid-message: nothing of it counts
        finally:
            writer.close()
            self.ended.set()


def _spec(port: int) -> TransportSpec:
    return TransportSpec("smtp", host="127.0.0.1", port=port, starttls="off", timeout=5.0)


def test_a_pipelined_group_is_answered_and_the_message_counts_only_on_its_250() -> None:
    async def scenario() -> tuple[tuple[int, str], PipeliningServer]:
        server = PipeliningServer()
        async with server as port:
            connection = SmtpConnection(_spec(port))
            try:
                result = await connection.send("a@example.org", "b@example.org", [MESSAGE[:20], MESSAGE[20:]])
            finally:
                await connection.close()
        return result, server

    (code, _), server = asyncio.run(scenario())
    assert code == 250
    assert server.messages == [MESSAGE]  # the pieces arrive as one message, in order
    assert server.commands[-4:] == ["MAIL", "RCPT", "DATA", "QUIT"]


def test_without_pipelining_a_command_waits_for_its_reply() -> None:
    async def scenario() -> PipeliningServer:
        server = PipeliningServer(pipelining=False)
        async with server as port:
            connection = SmtpConnection(_spec(port))
            try:
                for n in range(3):
                    await connection.send("a@example.org", f"b{n}@example.org", MESSAGE, prepared=True)
            finally:
                await connection.close()
        return server

    assert asyncio.run(scenario()).messages == [MESSAGE] * 3


def test_a_refused_recipient_whose_data_was_taken_ends_with_an_empty_message_and_the_session_goes_on() -> (
    None
):
    """A server that says 354 to DATA after refusing every recipient gets a lone dot, not the message."""

    def reply(command: str, argument: bytes) -> bytes:
        if command == "RCPT" and b"gone@" in argument:
            return b"550 5.1.1 no such user\r\n"
        if command == "DATA":
            return b"354 go ahead\r\n"
        return b"250 ok\r\n"

    async def scenario() -> tuple[SendFailure, PipeliningServer]:
        server = PipeliningServer(reply)
        async with server as port:
            connection = SmtpConnection(_spec(port))
            try:
                with pytest.raises(SendFailure) as refused:
                    await connection.send("a@example.org", "gone@example.org", MESSAGE, prepared=True)
                await connection.send("a@example.org", "here@example.org", MESSAGE, prepared=True)
            finally:
                await connection.close()
        return refused.value, server

    failure, server = asyncio.run(scenario())
    assert failure.kind == "mailbox" and failure.code == 550
    assert server.messages == [b"", MESSAGE]  # the refused one's body never went
    assert "RSET" in server.commands


@pytest.mark.parametrize(
    ("code", "kind"), [(b"451 4.3.0 try later", "temporary"), (b"554 5.6.0 rejected", "refused")]
)
def test_a_message_refused_after_its_dot_is_not_sent(code: bytes, kind: str) -> None:
    def reply(command: str, argument: bytes) -> bytes:
        return {"DATA": b"354 go ahead\r\n", "END": code + b"\r\n"}.get(command, b"250 ok\r\n")

    async def scenario() -> SendFailure:
        async with PipeliningServer(reply) as port:
            connection = SmtpConnection(_spec(port))
            try:
                with pytest.raises(SendFailure) as refused:
                    await connection.send("a@example.org", "b@example.org", MESSAGE, prepared=True)
            finally:
                await connection.close()
        return refused.value

    assert asyncio.run(scenario()).kind == kind


def test_a_message_travels_while_the_last_outcome_is_made_durable_and_ends_once_it_is() -> None:
    """The whole message reaches the server before ``before_end`` is settled; only its final dot waits."""

    async def scenario() -> tuple[tuple[int, str], PipeliningServer]:
        server = PipeliningServer()
        async with server as port:
            connection = SmtpConnection(_spec(port))
            durable: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

            async def settle_once_the_body_is_there() -> None:
                while bytes(server.received) != MESSAGE:
                    await server.arrived.wait()
                    server.arrived.clear()
                assert server.messages == []  # not a message yet: it has no end
                durable.set_result(True)

            try:
                reply, _ = await asyncio.wait_for(
                    asyncio.gather(
                        connection.send(
                            "a@example.org", "b@example.org", MESSAGE, prepared=True, before_end=durable
                        ),
                        settle_once_the_body_is_there(),
                    ),
                    5,
                )
            finally:
                await connection.close()
        return reply, server

    reply, server = asyncio.run(scenario())
    assert reply[0] == 250
    assert server.messages == [MESSAGE]


def test_a_message_whose_previous_outcome_was_not_made_durable_is_withheld() -> None:
    """The final dot waits for ``before_end``; False: the message never ends, the server keeps nothing."""

    async def scenario() -> tuple[SendFailure, PipeliningServer]:
        server = PipeliningServer()
        async with server as port:
            connection = SmtpConnection(_spec(port))
            durable: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.01, durable.set_result, False)
            try:
                with pytest.raises(SendFailure) as withheld:
                    await connection.send(
                        "a@example.org", "b@example.org", MESSAGE, prepared=True, before_end=durable
                    )
            finally:
                await connection.close()
            await asyncio.wait_for(server.ended.wait(), 5)
        return withheld.value, server

    failure, server = asyncio.run(scenario())
    assert failure.kind == "temporary" and failure.reconnect
    assert server.messages == []
