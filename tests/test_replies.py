"""What a send does with each kind of server reply, against aiosmtpd with injected replies.

Mailbox refusals fail one recipient wherever they sit; replies about the sender
(quotas, rates, policy, many unexplained refusals in a row) pause the send with
nobody failed, and the next run goes on; credentials never travel without TLS.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import KNOWN, NOW, digest_cmd, run_digest, smtp_config, write_subscribers
from digest.errors import DeliveryError
from digest.newsletter.catalog import load_issue
from digest.pipeline import mail_issue
from digest.send.ledger import read_ledger
from digest.send.replies import Decision, classify, reply_text
from digest.subscribers.reading import read_subscribers
from smtpserver import password_authenticator, running_server, tls_context

READERS = [f"reader{n:02}@example.com" for n in range(40)]
REPEATED_CODE = re.compile(r"\b(\d{3})[ -]+\1\b")


def prepare(site, port, extra="", addresses=READERS, release=""):
    site.write_config(smtp_config(port, extra) + release)
    site.copy_examples()
    rows = [(a, "", "", "active", "2026-01-01") for a in addresses]
    write_subscribers(site.root / "subscribers.csv", rows)
    return load_issue(site.config, "2026-11-01")


def send(site, issue, **kwargs):
    return mail_issue(site.config, issue, NOW, progress=False, **kwargs)


def statuses(site):
    return {s.email: s.status for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers}


def ledger_statuses(site):
    outcomes = read_ledger(site.config.paths.state, "2026-11-01").outcomes
    return {to: o.status for to, o in outcomes.items()}


def refuse_after(smtp, accepted, reply, at="DATA"):
    """From the ``accepted``-th message on, answer ``reply`` at RCPT or DATA; returns a switch to lift it."""
    lifted = []

    def refusing():
        return not lifted and len(smtp.received) >= accepted

    if at == "DATA":

        async def hook(session, envelope):
            return reply if refusing() else None

        smtp.before_data(hook)
    else:
        original = smtp.handle_RCPT

        async def handle(server, session, envelope, address, options):
            if refusing():
                return reply
            return await original(server, session, envelope, address, options)

        smtp.handle_RCPT = handle
    return lambda: lifted.append(True)


def refuse_rcpt(smtp, replies):
    """Answer RCPT TO with ``replies[address]`` for the addresses it names."""
    original = smtp.handle_RCPT

    async def handle(server, session, envelope, address, options):
        reply = replies.get(address.lower())
        return reply if reply else await original(server, session, envelope, address, options)

    smtp.handle_RCPT = handle


# -- item 3: credentials only over TLS ---------------------------------------------------------


def recording_authenticator(user, password):
    check = password_authenticator(user, password)
    calls = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        calls.append(mechanism)
        return check(server, session, envelope, mechanism, auth_data)

    return authenticate, calls


def test_a_server_without_starttls_never_gets_the_password(site, run_env):
    authenticate, calls = recording_authenticator("mailer", "s3cret")
    with running_server(authenticator=authenticate, auth_require_tls=False) as (controller, recorder):
        prepare(site, controller.port, 'username = "mailer"\n', READERS[:3])  # starttls: the default "auto"
        command = ["send", "2026-11-01", "--no-progress", "--config", str(site.config_path)]
        result = run_digest(command, {**run_env, "DIGEST_SMTP_PASSWORD": "s3cret"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digest: "), result.stderr
    assert "does not offer STARTTLS" in lines[0] and 'starttls = "off"' in lines[0]
    assert calls == []  # no AUTH command ever reached the server
    assert recorder.received == []
    assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}


def test_auto_starttls_logs_in_once_the_connection_is_encrypted(site, tls_ca, monkeypatch):
    _, cert, ca_file = tls_ca
    authenticate, calls = recording_authenticator("mailer", "s3cret")
    with running_server(tls_context=tls_context(cert), authenticator=authenticate, auth_require_tls=True) as (
        controller,
        recorder,
    ):
        issue = prepare(site, controller.port, f'username = "mailer"\nca_file = "{ca_file}"\n', READERS[:3])
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
        assert send(site, issue).sent == 3
    assert calls and len(recorder.received) == 3


# -- item 4: replies about the sender pause the send --------------------------------------------

SENDER_REPLIES = [
    ("DATA", "550 5.4.5 Daily user sending quota exceeded"),
    ("DATA", "554 5.7.1 Message rejected: sender policy"),
    ("DATA", "452 4.5.3 Too many recipients this hour"),
    ("DATA", "552 Quota exceeded for this sender"),
    ("DATA", "421 4.7.0 Too many messages, closing connection"),
    ("DATA", "451 4.7.1 Sending rate limit exceeded, slow down"),
    ("RCPT", "550 5.4.5 Daily user sending quota exceeded"),
    ("RCPT", "452 4.5.3 Too many recipients"),
    ("RCPT", "550 5.7.1 Relay access denied"),
]


@pytest.mark.parametrize(("at", "reply"), SENDER_REPLIES)
def test_a_reply_about_the_sender_pauses_the_send_and_fails_nobody(site, smtp, at, reply):
    issue = prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\n")
    lift = refuse_after(smtp, 10, reply, at)
    with pytest.raises(DeliveryError) as caught:
        send(site, issue)
    message = str(caught.value)
    assert "paused" in message and reply_text(int(reply[:3]), reply[4:]) in message
    assert "the 30 not yet mailed wait for the next `digest run`" in message
    assert not REPEATED_CODE.search(message)
    assert set(ledger_statuses(site).values()) == {"sent"} and len(ledger_statuses(site)) == 10
    assert set(statuses(site).values()) == {"active"}  # nobody failed, nobody bounced
    lift()
    report = send(site, issue)
    assert (report.sent, report.failed, report.already_done) == (30, 0, 10)
    assert smtp.per_recipient() == dict.fromkeys(READERS, 1)


def test_a_sender_quota_across_three_issues_marks_nobody_bounced(site, smtp):
    prepare(site, smtp.port, "concurrency = 1\nbounce_after = 3\n")
    refuse_after(smtp, 10, "550 5.4.5 Daily user sending quota exceeded")
    for stem in ("2026-10-01", "2026-10-15", "2026-11-01"):
        with pytest.raises(DeliveryError, match="paused"):
            send(site, load_issue(site.config, stem), force=True)
    assert set(statuses(site).values()) == {"active"}


def test_unexplained_refusals_in_a_row_pause_at_any_point_of_the_send(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\nmax_errors = 5\n")
    lift = refuse_after(smtp, 20, "550 Message rejected")  # a content filter, say: the same for everyone
    with pytest.raises(DeliveryError, match=r"paused: the server refused 5 recipients in a row permanently"):
        send(site, issue)
    assert list(ledger_statuses(site).values()) == ["sent"] * 20
    assert set(statuses(site).values()) == {"active"}
    lift()
    assert send(site, issue).sent == 20
    assert smtp.per_recipient() == dict.fromkeys(READERS, 1)


def test_unexplained_refusals_between_deliveries_are_that_recipients_failures(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\nmax_errors = 3\n")
    refuse_rcpt(smtp, {READERS[n]: "550 Message rejected" for n in (3, 4, 20, 39)})
    report = send(site, issue)
    assert (report.sent, report.failed) == (36, 4)
    assert sorted(report.bounced) == [READERS[n] for n in (3, 4, 20, 39)]


def test_a_paused_send_is_retried_by_digest_run_and_status_says_why(site, smtp, run_env):
    release = '[release]\nmode = "manual"\nsince = 2026-01-01\n'
    prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\n", release=release)
    config = ["--config", str(site.config_path)]
    assert run_digest(["approve", "2026-11-01", *config], run_env).returncode == 0
    lift = refuse_after(smtp, 10, "550 5.4.5 Daily user sending quota exceeded")
    first = run_digest(["run", *config], run_env)
    assert first.returncode != 0 and "paused" in first.stdout, first.stdout + first.stderr
    status = run_digest(["status", *config], run_env)
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if x.startswith("2026-11-01"))
    assert "10/0/40" in line and "paused" in line
    assert "550 5.4.5 Daily user sending quota exceeded" in status.stdout
    again = run_digest(["run", *config], run_env)  # still over quota: tried again, still nobody failed
    assert "paused" in again.stdout and set(statuses(site).values()) == {"active"}
    lift()
    last = run_digest(["run", *config], run_env)
    assert last.returncode == 0, last.stdout + last.stderr
    assert "sent 2026-11-01: sent 30, failed 0" in last.stdout
    assert smtp.per_recipient() == dict.fromkeys(READERS, 1)
    status = run_digest(["status", *config], run_env)
    assert "paused" not in status.stdout and "mailed" in status.stdout


# -- item 5: dead mailboxes fail one recipient each, wherever they sit ---------------------------


@pytest.mark.parametrize("where", ["head", "middle", "tail"])
def test_dead_addresses_anywhere_fail_alone(site, smtp, run_env, where):
    dead = [f"dead{n}@example.com" for n in range(5)]
    good = READERS[:30]
    addresses = {"head": dead + good, "middle": good[:15] + dead + good[15:], "tail": good + dead}[where]
    prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\n", addresses)
    replies = dict.fromkeys(dead[:3], "550 5.1.1 No such user here")
    replies |= {dead[3]: "550 5.2.1 Mailbox disabled", dead[4]: "550 550 5.1.1 Recipient unknown"}
    refuse_rcpt(smtp, replies)
    result = subprocess.run(
        [*digest_cmd(), "send", "2026-11-01", "--no-progress", "--config", str(site.config_path)],
        capture_output=True,
        text=True,
        env=run_env,
    )
    assert result.returncode == 0, result.stderr
    assert "sent 30, failed 5" in result.stdout
    assert smtp.per_recipient() == dict.fromkeys(good, 1)
    assert {a: s for a, s in statuses(site).items() if s != "active"} == dict.fromkeys(dead, "bounced")
    outcomes = read_ledger(site.config.paths.state, "2026-11-01").outcomes
    assert outcomes[dead[4]].detail == "550 5.1.1 Recipient unknown"  # the code once


# -- item 16: the code once in every message ------------------------------------------------------


def test_no_message_repeats_the_reply_code(site, smtp, run_env):
    prepare(site, smtp.port, "concurrency = 1\nmax_errors = 2\n", READERS[:4])
    refuse_rcpt(smtp, dict.fromkeys(READERS[:4], "554 554 Rejected"))
    command = ["send", "2026-11-01", "--no-progress", "--config", str(site.config_path)]
    refused = run_digest(command, run_env)
    assert refused.returncode != 0 and "554 Rejected" in refused.stderr
    preview = run_digest(["preview", "2026-11-01", "--to", READERS[0], *command[-2:]], run_env)
    assert preview.returncode != 0 and "554 Rejected" in preview.stderr
    for text in (refused.stderr, preview.stderr):
        assert not REPEATED_CODE.search(text), text


@pytest.mark.parametrize(
    ("reply", "decision"),
    [
        ("550 5.1.1 No such user here", Decision.MAILBOX),
        ("552 5.2.2 Mailbox full, over quota", Decision.MAILBOX),
        ("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException", Decision.SENDER),
        ("550 5.1.8 Bad sender address", Decision.SENDER),
        ("550 5.4.5 Daily user sending quota exceeded", Decision.SENDER),
        ("554 5.7.1 Relay access denied", Decision.SENDER),
        ("550 No such user", Decision.MAILBOX),
        ("550 Rejected", Decision.REFUSED),
        ("452 4.2.2 The account you tried to reach is over quota", Decision.RETRY),
        ("454 4.7.0 Throttling: slow down", Decision.RETRY),
        ("451 4.3.0 try later", Decision.RETRY),
        ("421 4.7.0 Too many connections", Decision.SENDER),
    ],
)
def test_the_reply_table(reply, decision):
    verdict = classify(int(reply[:3]), reply[4:])
    assert verdict.decision is decision
    assert verdict.reply == reply
