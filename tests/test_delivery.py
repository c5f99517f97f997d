"""Sending against a real SMTP server (aiosmtpd on 127.0.0.1) with injected faults."""

from __future__ import annotations

import asyncio

import pytest

from conftest import KNOWN, NOW, smtp_config, write_subscribers
from digest.errors import DeliveryError, LockBusy, ReleaseError
from digest.newsletter.catalog import load_issue
from digest.pipeline import mail_issue
from digest.send.ledger import Outcome, ledger_path, read_ledger, read_tally, send_lock
from digest.send.ledger_writer import LedgerWriter
from digest.send.shard import RateLimiter
from digest.subscribers.changes import set_status
from digest.subscribers.reading import read_subscribers
from smtpserver import password_authenticator, running_server, tls_context


def prepare(site, port, extra="", subscribers=None, transport=None):
    site.write_config(smtp_config(port, extra, transport))
    site.copy_examples()
    rows = subscribers or [
        (f"user{n}@example.com", f"用户{n}", "", "active", "2026-01-01") for n in range(10)
    ]
    write_subscribers(site.root / "subscribers.csv", rows)
    return load_issue(site.config, "2026-11-01")


def send(site, issue, **kwargs):
    return mail_issue(site.config, issue, NOW, progress=False, **kwargs)


def test_every_active_subscriber_gets_exactly_one_copy(site, smtp):
    rows = [
        ("a@example.com", "甲", "", "active", ""),
        ("b@example.com", "", "papers", "active", ""),
        ("c@example.com", "", "", "unsubscribed", ""),
        ("d@example.com", "", "", "bounced", ""),
        ("e@example.com", "", "apps", "active", ""),  # the issue has no 应用 items
    ]
    issue = prepare(site, smtp.port, subscribers=rows)
    report = send(site, issue)
    assert (report.sent, report.failed, report.deferred, report.skipped) == (2, 0, 0, 1)
    assert smtp.per_recipient() == {"a@example.com": 1, "b@example.com": 1}
    by_rcpt = {r.rcpt: r.message for r in smtp.received}
    full = by_rcpt["a@example.com"].get_body(("html",)).get_content()
    papers_only = by_rcpt["b@example.com"].get_body(("html",)).get_content()
    assert "业界新闻</h2>" in full and "论文</h2>" in full
    assert "论文</h2>" in papers_only and "业界新闻</h2>" not in papers_only
    assert all(r.mail_from == "digest@news.example.org" for r in smtp.received)
    summary = read_ledger(site.config.paths.state, "2026-11-01")
    assert {to: o.status for to, o in summary.outcomes.items()} == {
        "a@example.com": "sent",
        "b@example.com": "sent",
        "e@example.com": "skipped",
    }
    assert summary.outcomes["a@example.com"].message_id == by_rcpt["a@example.com"]["Message-ID"]


def test_a_second_send_sends_nothing_and_resend_starts_a_new_round(site, smtp):
    issue = prepare(site, smtp.port)
    first = send(site, issue)
    assert first.sent == 10
    again = send(site, issue)
    assert (again.sent, again.already_done) == (0, 10)
    assert sum(smtp.per_recipient().values()) == 10
    ids_before = {r.rcpt: r.message_id for r in smtp.received}
    resent = send(site, issue, resend=True)
    assert resent.sent == 10 and resent.round == 2
    assert set(smtp.per_recipient().values()) == {2}
    ids_after = {r.rcpt: r.message_id for r in smtp.received[10:]}
    assert all(ids_before[k] != ids_after[k] for k in ids_after)


def test_421_then_accept_is_retried(site, smtp):
    issue = prepare(site, smtp.port)
    smtp.faults.data_replies = ["421 4.3.2 Service shutting down, try again"] * 3
    report = send(site, issue)
    assert report.sent == 10 and report.deferred == 0
    assert set(smtp.per_recipient().values()) == {1}


def test_dropped_connection_mid_data_is_retried(site, smtp):
    issue = prepare(site, smtp.port)
    smtp.faults.drop_data = 3
    report = send(site, issue)
    assert report.sent == 10
    assert set(smtp.per_recipient().values()) == {1}


def test_454_throttling_is_a_retry_not_a_failure(site, smtp):
    issue = prepare(site, smtp.port)
    smtp.faults.data_replies = ["454 4.7.0 Throttling: slow down"] * 6
    report = send(site, issue)
    assert (report.sent, report.failed, report.deferred) == (10, 0, 0)


def test_550_fails_that_recipient_only_and_marks_it_bounced(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 1\n")
    smtp.faults.reject = {"user3@example.com", "user7@example.com"}
    report = send(site, issue)
    assert (report.sent, report.failed) == (8, 2)
    assert sorted(report.bounced) == ["user3@example.com", "user7@example.com"]
    listing = read_subscribers(site.root / "subscribers.csv", KNOWN)
    assert listing.find("user3@example.com").status == "bounced"
    assert listing.find("user4@example.com").status == "active"
    outcome = read_ledger(site.config.paths.state, "2026-11-01").outcomes["user3@example.com"]
    assert (outcome.status, outcome.code) == ("failed", 550)
    assert send(site, issue).sent == 0  # failed is final for the round


def test_bounced_only_after_bounce_after_failures_in_a_row(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 2\n")
    smtp.faults.reject = {"user3@example.com"}
    assert send(site, issue).bounced == []
    second = load_issue(site.config, "2026-10-15")
    assert send(site, second, force=True).bounced == ["user3@example.com"]


def test_a_delivery_between_refusals_starts_the_count_again(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 2\n")
    smtp.faults.reject = {"user3@example.com"}
    assert send(site, load_issue(site.config, "2026-10-01"), force=True).bounced == []
    smtp.faults.reject = set()
    assert send(site, load_issue(site.config, "2026-10-15"), force=True).bounced == []
    smtp.faults.reject = {"user3@example.com"}
    assert send(site, issue).bounced == []  # refused, delivered, refused: not two in a row
    listing = read_subscribers(site.root / "subscribers.csv", KNOWN)
    assert listing.find("user3@example.com").status == "active"


def test_refusals_count_in_the_order_they_happened_not_by_issue_date(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 2\n")
    assert send(site, issue).bounced == []  # 2026-11-01 delivered to everyone
    smtp.faults.reject = {"user3@example.com"}
    assert send(site, load_issue(site.config, "2026-10-15"), force=True).bounced == []
    late = send(site, load_issue(site.config, "2026-10-01"), force=True)  # older issues mailed late
    assert late.bounced == ["user3@example.com"]


def test_a_finished_round_is_tallied_from_its_marker_and_a_resend_starts_afresh(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 5\n")
    smtp.faults.reject = {"user3@example.com"}
    send(site, issue)
    state = site.config.paths.state
    tally = read_tally(state, issue.key)
    assert (tally.finished, tally.count("sent"), tally.count("failed"), tally.done) == (True, 9, 1, 10)
    assert tally == read_ledger(state, issue.key).tally()
    path = ledger_path(state, issue.key)
    shard = ledger_path(state, issue.key, 1)  # a later send split over processes wrote here
    shard.write_bytes(Outcome("late@example.com", "sent", 250, at=NOW.isoformat()).line())
    assert read_tally(state, issue.key).count("sent") == 10  # the marker no longer tells the whole story
    shard.unlink()
    marker = path.read_bytes().splitlines()[-1]
    path.write_bytes(path.read_bytes().replace(marker, marker.replace(b'"sent": 9', b'"sent": "nine"')))
    assert read_tally(state, issue.key) == tally  # a marker edited by hand: the lines are counted
    with LedgerWriter(path) as writer:
        writer.start_round(2, NOW)
    fresh = read_tally(state, issue.key)
    assert (fresh.round, fresh.finished, fresh.exists, fresh.recipients) == (2, False, True, 0)


def test_slow_server_times_out_then_deferred_then_sent_on_the_next_run(site, smtp):
    issue = prepare(
        site, smtp.port, extra="timeout = 0.2\nmax_attempts = 2\nmax_errors = 100\nconcurrency = 2\n"
    )
    smtp.faults.delay = 1.0
    report = send(site, issue)
    assert report.deferred == 10 and report.sent == 0
    smtp.faults.delay = 0.0
    later = send(site, issue)
    assert later.sent == 10
    assert len(smtp.per_recipient()) == 10  # everyone has a copy (a timed-out one may have arrived too)


def test_unreachable_server_pauses_with_a_clear_message_and_keeps_the_ledger(site, smtp):
    issue = prepare(site, 1, extra="max_errors = 3\n")
    with pytest.raises(DeliveryError) as caught:
        send(site, issue)
    message = str(caught.value)
    assert "paused after 3 consecutive connection failures" in message
    assert "cannot connect to 127.0.0.1:1" in message
    assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}


def test_unsubscribe_during_a_send_is_honoured(site, smtp):
    issue = prepare(site, smtp.port, extra="concurrency = 1\n")

    async def unsubscribe_user5_on_first_message(session, envelope):
        if not smtp.received:
            set_status(site.root / "subscribers.csv", KNOWN, "user5@example.com", "unsubscribed")

    smtp.before_data(unsubscribe_user5_on_first_message)
    report = send(site, issue)
    assert "user5@example.com" not in smtp.per_recipient()
    assert report.sent == 9 and report.unsubscribed_during == 1


def test_reconnects_after_max_per_connection(site, smtp):
    issue = prepare(site, smtp.port, extra="concurrency = 1\nmax_per_connection = 3\n")
    sessions = []

    async def count_sessions(session, envelope):
        if session not in sessions:
            sessions.append(session)

    smtp.before_data(count_sessions)
    assert send(site, issue).sent == 10
    assert len(sessions) == 4  # 3 + 3 + 3 + 1


def test_two_sends_of_one_issue_at_once_are_prevented(site, smtp):
    issue = prepare(site, smtp.port)
    with (
        send_lock(site.config.paths.state, "2026-11-01"),
        pytest.raises(LockBusy, match="sending 2026-11-01"),
    ):
        send(site, issue)


def test_refuses_errors_without_force_and_drafts_always(site, smtp):
    prepare(site, smtp.port)
    site.write_issue("2026-11-10.md", "# 简报 (2026-11-10)：x\n## 论文\n- [a | b]()\n摘要：空链接。\n")
    broken = load_issue(site.config, "2026-11-10")
    with pytest.raises(ReleaseError, match="lint error"):
        send(site, broken)
    assert send(site, broken, force=True).sent == 10
    site.write_issue(
        "2026-11-11.md", "---\ndraft: true\n---\n# 简报 (2026-11-11)：x\n## 论文\n- [a](https://a.org)\n"
    )
    with pytest.raises(ReleaseError, match="draft"):
        send(site, load_issue(site.config, "2026-11-11"), force=True)


def test_starttls_required_with_a_trusted_certificate(site, tls_ca):
    _, cert, ca_file = tls_ca
    with running_server(tls_context=tls_context(cert), require_starttls=True) as (controller, recorder):
        issue = prepare(site, controller.port, extra=f'starttls = "required"\nca_file = "{ca_file}"\n')
        assert send(site, issue).sent == 10
        assert len(recorder.received) == 10


def test_tls_failure_stops_with_a_clear_message(site, tls_ca):
    _, cert, _ = tls_ca
    with running_server(tls_context=tls_context(cert), require_starttls=True) as (controller, recorder):
        issue = prepare(site, controller.port, extra='starttls = "required"\n')  # no ca_file: untrusted
        with pytest.raises(DeliveryError, match=r"TLS certificate of 127\.0\.0\.1"):
            send(site, issue)
        assert recorder.received == []
        assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}


def test_starttls_required_but_not_offered(site, smtp):
    issue = prepare(site, smtp.port, extra='starttls = "required"\n')
    with pytest.raises(DeliveryError, match="STARTTLS"):
        send(site, issue)


def test_implicit_tls(site, tls_ca):
    _, cert, ca_file = tls_ca
    with running_server(ssl_context=tls_context(cert)) as (controller, recorder):
        issue = prepare(
            site,
            controller.port,
            extra=f'ca_file = "{ca_file}"\n',
            transport=f"smtps://127.0.0.1:{controller.port}",
        )
        assert send(site, issue).sent == 10
        assert len(recorder.received) == 10


def test_auth_with_the_password_from_the_environment(site, monkeypatch):
    auth = password_authenticator("mailer", "s3cret")
    with running_server(authenticator=auth, auth_require_tls=False) as (controller, recorder):
        # plaintext AUTH only because starttls = "off" says so on purpose
        issue = prepare(site, controller.port, extra='username = "mailer"\nstarttls = "off"\n')
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")
        with pytest.raises(DeliveryError, match="refused the login for mailer"):
            send(site, issue)
        assert recorder.received == []
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
        assert send(site, issue).sent == 10


def test_maildir_transport(site, tmp_path):
    issue = prepare(site, 0, transport=f"maildir:{tmp_path / 'Maildir'}")
    assert send(site, issue).sent == 10
    delivered = list((tmp_path / "Maildir" / "new").iterdir())
    assert len(delivered) == 10
    assert all(b"\r\n" not in p.read_bytes() for p in delivered)
    assert not list((tmp_path / "Maildir" / "tmp").iterdir())


def test_rate_limiter_spaces_messages(monkeypatch):
    clock = [100.0]
    waits = []
    monkeypatch.setattr("digest.send.shard.time.monotonic", lambda: clock[0])

    async def fake_sleep(seconds):
        waits.append(round(seconds, 6))

    monkeypatch.setattr("digest.send.shard.asyncio.sleep", fake_sleep)
    limiter = RateLimiter(4.0)

    async def run():
        for _ in range(4):
            await limiter.acquire()

    asyncio.run(run())
    assert waits == [0.25, 0.5, 0.75]
    assert RateLimiter(0).interval == 0


def test_a_relay_that_refuses_everyone_stops_the_send_and_marks_nobody(site, smtp):
    # a refusal that names no cause (a mailbox code such as 5.1.1 fails that recipient alone)
    issue = prepare(site, smtp.port, extra="bounce_after = 1\nmax_errors = 3\n")
    original = smtp.handle_RCPT

    async def refuse_everyone(server, session, envelope, address, rcpt_options):
        return "550 Rejected"

    smtp.handle_RCPT = refuse_everyone
    with pytest.raises(DeliveryError, match="refused 3 recipients in a row permanently"):
        send(site, issue)
    assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}
    assert all(s.active for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers)
    smtp.handle_RCPT = original
    assert send(site, issue).sent == 10  # once fixed, everyone gets it


def test_policy_refusals_stop_the_send_at_once(site, smtp):
    issue = prepare(site, smtp.port, extra="bounce_after = 1\n")
    original = smtp.handle_RCPT

    async def relay_denied(server, session, envelope, address, rcpt_options):
        return "554 5.7.1 Relay access denied"

    smtp.handle_RCPT = relay_denied
    with pytest.raises(
        DeliveryError, match=r"refuses the message as policy \(554 5\.7\.1 Relay access denied\)"
    ):
        send(site, issue)
    assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}
    smtp.handle_RCPT = original
    assert send(site, issue).sent == 10


def test_refusals_after_a_success_are_ordinary_failures(site, smtp):
    issue = prepare(site, smtp.port, extra="concurrency = 1\nmax_errors = 2\n")
    smtp.faults.reject = {f"user{n}@example.com" for n in range(1, 10)}  # all but the first
    report = send(site, issue)
    assert (report.sent, report.failed) == (1, 9)


def test_unsubscribing_during_retries_stops_the_retries(site, smtp):
    issue = prepare(site, smtp.port, extra="concurrency = 1\nmax_attempts = 5\n")
    replies = ["451 4.3.0 try later"]

    async def unsubscribe_while_refusing(session, envelope):
        if "user0@example.com" in envelope.rcpt_tos and replies:
            set_status(site.root / "subscribers.csv", KNOWN, "user0@example.com", "unsubscribed")
            return replies.pop()
        return None

    smtp.before_data(unsubscribe_while_refusing)
    report = send(site, issue)
    assert "user0@example.com" not in smtp.per_recipient()
    assert report.unsubscribed_during == 1 and report.sent == 9


def test_two_spellings_of_one_address_in_a_split_send_are_mailed_once(site, smtp):
    rows = [(f"user{n}@example.com", "", "", "active", "") for n in range(200)]
    rows += [("d@straße.de", "", "", "active", ""), ("D@Straße.DE", "", "", "active", "")]
    issue = prepare(site, smtp.port, extra="processes = 2\n", subscribers=rows)
    report = send(site, issue)
    assert report.processes == 2
    assert report.sent == 201
    assert sum(n for to, n in smtp.per_recipient().items() if "stra" in to) == 1
