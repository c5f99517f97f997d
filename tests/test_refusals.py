"""A relay that refuses everyone is the sender's problem, against aiosmtpd with injected replies.

When every recipient of a round so far is refused, or a refusal names the
sender, the relay's policy or an unverified identity, the send pauses: nobody
is failed or counted towards ``bounce_after``, the command exits non-zero with
the server's reply, and ``digest status`` says why. A server that ends a
session after some messages (``421``) gets a new session, not a pause.
"""

from __future__ import annotations

import pytest

from conftest import KNOWN, NOW, run_digest, smtp_config, write_subscribers
from digest.errors import DeliveryError
from digest.newsletter.catalog import load_issue
from digest.pipeline import mail_issue
from digest.send.ledger import read_ledger
from digest.subscribers.reading import read_subscribers

TWO = ["editor@example.com", "tester@example.com"]
SES_SANDBOX = (
    "554 Message rejected: Email address is not verified. The following identities failed the check "
    "in region US-EAST-1: {address}"
)


def prepare(site, port, addresses, extra="", release=""):
    site.write_config(smtp_config(port, "bounce_after = 1\n" + extra) + release)
    site.copy_examples()
    write_subscribers(site.root / "subscribers.csv", [(a, "", "", "active", "2026-01-01") for a in addresses])
    return load_issue(site.config, "2026-11-01")


def refuse_every_rcpt(smtp, reply):
    """Answer every RCPT TO with ``reply`` (``{address}`` filled in); returns a switch to lift it."""
    original, lifted = smtp.handle_RCPT, []

    async def handle(server, session, envelope, address, options):
        if lifted:
            return await original(server, session, envelope, address, options)
        return reply.format(address=address)

    smtp.handle_RCPT = handle
    return lambda: lifted.append(True)


def statuses(site):
    return {s.email: s.status for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers}


def outcomes(site, stem="2026-11-01"):
    return read_ledger(site.config.paths.state, stem).outcomes


@pytest.mark.parametrize(
    "reply",
    [
        "550 Rejected",
        "550 5.1.1 No such user here",
        SES_SANDBOX,
        "550 5.7.1 <{address}>: Relay access denied",
    ],
)
def test_a_small_list_that_everyone_refuses_pauses_and_fails_nobody(site, smtp, run_env, reply):
    release = '[release]\nmode = "manual"\nsince = 2026-01-01\n'
    prepare(site, smtp.port, TWO, release=release)
    config = ["--config", str(site.config_path)]
    assert run_digest(["approve", "2026-11-01", *config], run_env).returncode == 0
    lift = refuse_every_rcpt(smtp, reply)
    for _ in range(3):  # three runs (bounce_after = 1): still nobody bounced
        run = run_digest(["run", *config], run_env)
        assert run.returncode != 0, run.stdout + run.stderr
        assert "paused" in run.stdout and reply.split("{address}")[0] in run.stdout
        assert "nothing to do" not in run.stdout
    assert outcomes(site) == {}
    assert set(statuses(site).values()) == {"active"}
    send = run_digest(["send", "2026-11-01", "--no-progress", *config], run_env)
    assert send.returncode != 0 and send.stderr.startswith("digest: ") and "paused" in send.stderr
    assert len(send.stderr.strip().splitlines()) == 1, send.stderr
    status = run_digest(["status", *config], run_env)
    line = next(x for x in status.stdout.splitlines() if x.startswith("2026-11-01"))
    assert "paused" in line and "0/0/2" in line, status.stdout
    assert reply.split("{address}")[0] in status.stdout
    lift()
    last = run_digest(["run", *config], run_env)
    assert last.returncode == 0 and "sent 2, failed 0" in last.stdout, last.stdout + last.stderr
    assert smtp.per_recipient() == dict.fromkeys(TWO, 1)


def test_an_unverified_sender_pauses_at_the_first_refusal(site, smtp):
    readers = [f"reader{n:02}@example.com" for n in range(40)]
    issue = prepare(site, smtp.port, readers, "concurrency = 1\n")
    refuse_every_rcpt(smtp, SES_SANDBOX)
    with pytest.raises(DeliveryError, match="Email address is not verified") as caught:
        mail_issue(site.config, issue, NOW, progress=False)
    assert "the 40 not yet mailed" in str(caught.value)
    assert outcomes(site) == {} and set(statuses(site).values()) == {"active"}


def test_a_refusal_naming_the_sender_pauses(site, smtp):
    issue = prepare(site, smtp.port, [*TWO, "third@example.com"], "concurrency = 1\n")
    refuse_every_rcpt(smtp, "550 digest@news.example.org is not permitted here")
    with pytest.raises(DeliveryError, match=r"refuses the sender digest@news\.example\.org"):
        mail_issue(site.config, issue, NOW, progress=False)
    assert outcomes(site) == {}


def test_everyone_refused_across_three_issues_marks_nobody_bounced(site, smtp):
    prepare(site, smtp.port, TWO)
    refuse_every_rcpt(smtp, "550 5.1.1 No such user here")
    for stem in ("2026-10-01", "2026-10-15", "2026-11-01"):
        with pytest.raises(DeliveryError, match="refused every recipient so far"):
            mail_issue(site.config, load_issue(site.config, stem), NOW, progress=False, force=True)
        assert outcomes(site, stem) == {}
    assert set(statuses(site).values()) == {"active"}


def test_dead_addresses_after_a_delivery_of_an_earlier_run_still_fail(site, smtp):
    issue = prepare(site, smtp.port, TWO, "concurrency = 1\n")
    smtp.faults.reject = {TWO[1]}
    stop_after_first = []

    async def once(session, envelope):  # the first run delivers one, then the server goes away
        if stop_after_first:
            return "421 4.3.2 shutting down"
        stop_after_first.append(True)
        return None

    smtp.before_data(once)
    report = mail_issue(site.config, issue, NOW, progress=False)
    assert (report.sent, report.failed) == (1, 1)  # the round has a delivery: the refusal is the mailbox's
    assert statuses(site)[TWO[1]] == "bounced"


def end_sessions_after(smtp, count, reply="421 4.7.0 too many messages, closing connection"):
    """Answer MAIL FROM with ``reply`` and hang up once a session has delivered ``count`` messages."""

    async def handle_MAIL(server, session, envelope, address, options):
        done = getattr(session, "delivered", 0)
        if done >= count:
            await server.push(reply)
            server.transport.close()
            return "421 closing"  # not sent: the connection is gone
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(server, session, envelope, original=smtp.handle_DATA):
        answer = await original(server, session, envelope)
        session.delivered = getattr(session, "delivered", 0) + 1
        return answer

    smtp.handle_MAIL = handle_MAIL
    smtp.handle_DATA = handle_DATA


def test_a_421_at_the_end_of_a_session_reconnects_and_goes_on(site, smtp):
    readers = [f"reader{n:02}@example.com" for n in range(12)]
    issue = prepare(site, smtp.port, readers, "concurrency = 2\nmax_attempts = 1\nmax_per_connection = 100\n")
    end_sessions_after(smtp, 3)
    report = mail_issue(site.config, issue, NOW, progress=False)
    assert (report.sent, report.failed, report.deferred) == (12, 0, 0)
    assert smtp.per_recipient() == dict.fromkeys(readers, 1)


def test_a_fresh_session_refused_at_once_pauses(site, smtp):
    readers = [f"reader{n:02}@example.com" for n in range(6)]
    issue = prepare(site, smtp.port, readers, "concurrency = 1\n")
    end_sessions_after(smtp, 0)
    with pytest.raises(DeliveryError, match=r"paused: .*421 4\.7\.0 too many messages"):
        mail_issue(site.config, issue, NOW, progress=False)
    assert outcomes(site) == {} and smtp.received == []


def test_a_greeting_that_refuses_the_sender_pauses_at_once(site):
    """A server whose greeting is "421 too many connections from your address": no retries against it."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    greeted = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            greeted.append(True)
            conn.sendall(b"421 4.7.0 Too many connections from your address, try later\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        issue = prepare(site, listener.getsockname()[1], TWO, "concurrency = 1\nmax_errors = 5\n")
        with pytest.raises(DeliveryError, match=r"refused a new session: .*421 4\.7\.0 Too many connections"):
            mail_issue(site.config, issue, NOW, progress=False)
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        listener.close()
        thread.join(5)
    assert len(greeted) == 1  # paused at the first refusal, not retried max_errors times
    assert outcomes(site) == {}
