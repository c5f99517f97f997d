"""The send's decisions one at a time: who is mailed, what is recorded, and what the editor is told."""

from __future__ import annotations

import os

import pytest

from conftest import KNOWN, NOW, prepare_example, smtp_config, write_subscribers
from digest.errors import DeliveryError, SubscriberError
from digest.pipeline import mail_issue
from digest.send import delivery, recipients, shard
from digest.send.delivery import SendReport, send_test_copy
from digest.send.ledger import Outcome, ledger_path, read_ledger, read_tally
from digest.send.ledger_writer import LedgerWriter
from digest.subscribers.changes import set_status
from digest.subscribers.reading import read_subscribers

USERS = [f"user{n}@example.com" for n in range(6)]


def prepare(site, port, extra="", rows=None):
    return prepare_example(site, port, USERS, extra, rows)


def send(site, issue, **kwargs):
    return mail_issue(site.config, issue, NOW, progress=False, **kwargs)


def refuse_everyone(smtp, reply="550 Rejected"):
    """A refusal that names no cause: neither the mailbox nor the sender (the reply table's ``refused``)."""

    async def refuse(server, session, envelope, address, rcpt_options):
        return reply

    smtp.handle_RCPT = refuse


def statuses(site, stem="2026-11-01"):
    return {to: o.status for to, o in read_ledger(site.config.paths.state, stem).outcomes.items()}


# -- what the editor is told -------------------------------------------------------------------


def test_the_summary_says_what_happened_and_what_to_do_next():
    quiet = SendReport("2026-11-01", 1, sent=3, seconds=1.5)
    assert quiet.summary() == "2026-11-01: sent 3, failed 0, deferred 0 in 1.5s (2 msg/s)"
    busy = SendReport(
        "2026-11-01", 2, sent=8, failed=1, deferred=2, skipped=1, unsubscribed_during=1, already_done=4,
        seconds=2.0, bounced=["x@example.com", "y@example.com"],
    )  # fmt: skip
    assert busy.summary() == (
        "2026-11-01: sent 8, failed 1, deferred 2, skipped 1 (no items in their sections), 4 already done, "
        "1 unsubscribed meanwhile in 2.0s (4 msg/s); marked bounced: x@example.com, y@example.com; "
        "run `digest send` again to retry the deferred ones"
    )
    assert SendReport("x", 1, sent=5).rate == 0.0  # no time measured: no rate, no error
    assert SendReport("x", 1, sent=3, seconds=0.5).rate == 6.0


def test_a_rate_below_one_message_a_second_is_still_a_limit():
    assert shard.RateLimiter(0.5).interval == 2.0
    assert shard.RateLimiter(0).interval == 0.0


def test_the_survey_counts_who_will_be_mailed_and_every_unreadable_line(tmp_path):
    path = tmp_path / "subscribers.csv"
    rows = [(a, "", "", "active", "") for a in USERS[:4]]
    rows += [("left@example.com", "", "", "unsubscribed", ""), ("bad", "", "", "active", "")]
    write_subscribers(path, rows)
    snapshot = tmp_path / "2026-11-01.round1.due"
    problems = recipients.fix_recipients(path, KNOWN, snapshot, {USERS[0]})
    assert problems == [f"{path}:7: invalid address 'bad': An email address must have an @-sign."]
    assert recipients.Recipients(path, KNOWN, {USERS[0]}, snapshot).survey() == 3
    assert recipients.Recipients(path, KNOWN, {USERS[0], USERS[1]}, snapshot).survey() == 2
    # The round's recipients are fixed when it starts: a resumed round keeps them, and still reports.
    write_subscribers(path, [*rows, ("late@example.com", "", "", "active", ""), ("worse", "", "", "", "")])
    assert recipients.fix_recipients(path, KNOWN, snapshot, set()) == [
        problems[0],
        f"{path}:9: invalid address 'worse': An email address must have an @-sign.",
    ]
    assert [s.email for s in recipients.Recipients(path, KNOWN, set(), snapshot)] == USERS[1:4]


# -- who is mailed -----------------------------------------------------------------------------


def test_only_active_subscribers_not_yet_done_are_mailed_and_the_round_is_closed(site, smtp):
    rows = [(a, "", "", "active", "") for a in USERS[:4]]
    rows += [("left@example.com", "", "", "unsubscribed", ""), ("gone@example.com", "", "", "bounced", "")]
    rows += [("not-an-address", "", "", "active", "")]
    issue = prepare(site, smtp.port, rows=rows)
    with LedgerWriter(ledger_path(site.config.paths.state, issue.key)) as ledger:
        ledger._write(Outcome(USERS[0], "sent", 250, "<x@y>", at=NOW.isoformat()).line())
        ledger._write(Outcome(USERS[1], "deferred", 421, "<x@z>", at=NOW.isoformat()).line())
    report = send(site, issue)
    assert (report.sent, report.already_done, report.failed, report.processes) == (3, 1, 0, 1)
    problem = f"{site.root / 'subscribers.csv'}:8: invalid address 'not-an-address': "
    assert report.list_problems == [problem + "An email address must have an @-sign."]
    assert smtp.per_recipient() == dict.fromkeys(USERS[1:4], 1)
    tally = read_tally(site.config.paths.state, issue.key)
    assert (tally.finished, tally.count("sent"), tally.recipients) == (True, 4, 4)


def test_a_send_with_deferred_recipients_is_not_closed_and_the_next_one_retries_only_them(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_attempts = 1\n")
    smtp.faults.data_replies = ["451 4.3.0 try later"]
    first = send(site, issue)
    assert (first.sent, first.deferred) == (5, 1)
    assert not read_tally(site.config.paths.state, issue.key).finished
    deferred = read_ledger(site.config.paths.state, issue.key).outcomes[USERS[0]]
    assert (deferred.status, deferred.code) == ("deferred", 451)
    assert deferred.detail == "gave up after 1 attempts: 451 4.3.0 try later"
    second = send(site, issue)
    assert (second.sent, second.already_done) == (1, 5)
    assert read_tally(site.config.paths.state, issue.key).finished
    assert smtp.per_recipient() == dict.fromkeys(USERS, 1)


def test_a_resend_mails_everyone_again_in_a_new_round_but_a_send_without_it_does_not(site, smtp):
    issue = prepare(site, smtp.port)
    assert send(site, issue).round == 1
    again = send(site, issue)
    assert (again.round, again.sent, again.already_done) == (1, 0, 6)
    resent = send(site, issue, resend=True)
    assert (resent.round, resent.sent, resent.already_done) == (2, 6, 0)
    assert smtp.per_recipient() == dict.fromkeys(USERS, 2)


def test_an_interrupted_resend_is_resumed_by_the_next_send(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_attempts = 1\n")
    send(site, issue)
    smtp.faults.data_replies = ["451 4.3.0 try later"]  # the resend's first message is deferred
    resent = send(site, issue, resend=True)
    assert (resent.round, resent.sent, resent.deferred) == (2, 5, 1)
    summary = read_ledger(site.config.paths.state, issue.key)
    assert (summary.round, summary.started, summary.finished) == (2, True, False)
    resumed = send(site, issue)
    assert (resumed.round, resumed.sent, resumed.already_done) == (2, 1, 5)
    assert smtp.per_recipient() == dict.fromkeys(USERS, 2)


def test_a_resend_of_an_issue_never_sent_is_its_first_round(site, smtp):
    issue = prepare(site, smtp.port)
    report = send(site, issue, resend=True)
    assert (report.round, report.sent) == (1, 6)
    assert b"start_round" not in ledger_path(site.config.paths.state, issue.key).read_bytes()


def test_a_subscriber_whose_sections_have_no_items_is_skipped_not_mailed(site, smtp):
    rows = [(USERS[0], "", "apps", "active", ""), (USERS[1], "", "papers", "active", "")]
    issue = prepare(site, smtp.port, rows=rows)
    report = send(site, issue)
    assert (report.sent, report.skipped) == (1, 1)
    assert statuses(site) == {USERS[0]: "skipped", USERS[1]: "sent"}
    assert send(site, issue).already_done == 2


def test_a_missing_list_is_a_clear_error_and_nothing_is_recorded(site, smtp):
    issue = prepare(site, smtp.port)
    (site.root / "subscribers.csv").unlink()
    with pytest.raises(SubscriberError, match="there is no subscriber list here"):
        send(site, issue)
    assert not (site.config.paths.state / "ledger").exists()


# -- refusals ----------------------------------------------------------------------------------


def test_a_few_recipients_all_refused_pause_the_send_and_fail_nobody(site, smtp):
    # two dead mailboxes and a relay that refuses everyone look the same: nobody reached is a pause
    issue = prepare(
        site,
        smtp.port,
        "max_errors = 5\nbounce_after = 1\n",
        rows=[(a, "", "", "active", "") for a in USERS[:2]],
    )
    smtp.faults.reject = set(USERS[:2])
    with pytest.raises(DeliveryError, match=r"refused every recipient so far \(2, none delivered"):
        send(site, issue)
    assert statuses(site) == {}
    assert all(s.active for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers)


def test_a_refusal_before_the_first_delivery_is_recorded_once_one_gets_through(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\n")
    smtp.faults.reject = {USERS[0], USERS[1]}
    report = send(site, issue)
    assert (report.sent, report.failed) == (4, 2)
    assert statuses(site) == {**dict.fromkeys(USERS[:2], "failed"), **dict.fromkeys(USERS[2:], "sent")}
    tally = read_tally(site.config.paths.state, "2026-11-01")
    assert (tally.finished, tally.count("failed")) == (True, 2)


def test_a_refused_subscriber_who_rejoined_starts_with_a_clean_slate(site, smtp):
    rows = [(USERS[0], "", "", "active", "2026-06-01"), (USERS[1], "", "", "active", "2026-01-01")]
    rows.append((USERS[2], "", "", "active", ""))
    issue = prepare(site, smtp.port, "bounce_after = 2\n", rows=rows)
    with LedgerWriter(ledger_path(site.config.paths.state, "2026-10-15")) as ledger:
        for to in USERS[:2]:  # refused in March: before the first one joined again in June
            ledger._write(Outcome(to, "failed", 550, at="2026-03-01T00:00:00+00:00").line())
    smtp.faults.reject = set(USERS[:2])
    report = send(site, issue)
    assert report.bounced == [USERS[1]]  # two refusals in a row since it joined
    listing = read_subscribers(site.root / "subscribers.csv", KNOWN)
    assert [(s.email, s.status) for s in listing.subscribers] == [
        (USERS[0], "active"),
        (USERS[1], "bounced"),
        (USERS[2], "active"),
    ]


def test_a_skipped_reader_first_does_not_hide_a_relay_that_refuses_everyone(site, smtp):
    rows = [(USERS[0], "", "apps", "active", "")] + [(a, "", "", "active", "") for a in USERS[1:]]
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\nbounce_after = 1\n", rows=rows)
    refuse_everyone(smtp)
    paused = (
        r"^2026-11-01: paused: the server refused 3 recipients in a row permanently \(last: 550 Rejected\)"
    )
    with pytest.raises(DeliveryError, match=paused):
        send(site, issue)
    assert statuses(site) == {USERS[0]: "skipped"}  # nobody marked failed
    assert all(s.active for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers)


def test_a_policy_refusal_stops_the_send_before_anyone_else_is_mailed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\n")
    original = smtp.handle_RCPT

    async def deny_the_first(server, session, envelope, address, rcpt_options):
        if address.lower() == USERS[0]:
            return "554 5.7.1 Relay access denied"
        return await original(server, session, envelope, address, rcpt_options)

    smtp.handle_RCPT = deny_the_first
    with pytest.raises(DeliveryError, match="policy"):
        send(site, issue)
    assert smtp.received == [] and statuses(site) == {}


def test_a_refused_reader_who_unsubscribed_meanwhile_stays_unsubscribed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nbounce_after = 1\n")
    smtp.faults.reject = {USERS[0]}

    async def first_reader_leaves(session, envelope):
        if USERS[1] in envelope.rcpt_tos:  # after the refusal of the first
            set_status(site.root / "subscribers.csv", KNOWN, USERS[0], "unsubscribed")

    smtp.before_data(first_reader_leaves)
    report = send(site, issue)
    assert (report.sent, report.failed, report.bounced) == (5, 1, [])
    assert read_subscribers(site.root / "subscribers.csv", KNOWN).find(USERS[0]).status == "unsubscribed"


def test_a_connection_that_keeps_failing_pauses_the_send_and_says_so(site, smtp):
    issue = prepare(site, 1, "max_errors = 2\nmax_attempts = 5\n")
    failing = (
        r"^2026-11-01: paused after 2 consecutive connection failures "
        r"\(last: cannot connect to 127\.0\.0\.1:1: .*\); check the server, then run the send again; "
        r"nobody was failed for it, and the 6 not yet mailed"
    )
    with pytest.raises(DeliveryError, match=failing) as caught:
        send(site, issue)
    assert "So far: 2026-11-01: sent 0, failed 0, deferred 0" in str(caught.value)
    assert read_ledger(site.config.paths.state, "2026-11-01").outcomes == {}
    assert not read_tally(site.config.paths.state, "2026-11-01").finished


# -- processes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processes", "concurrency", "recipients", "cores", "relay", "expected"),
    [
        (0, 8, 999, 8, "mail.example.org", 1),  # small sends stay in one process
        (0, 8, 1000, 2, "mail.example.org", 2),  # large ones: one per core
        (0, 8, 1000, 8, "mail.example.org", 4),  # up to 4
        (0, 8, 1000, 2, "127.0.0.1", 1),  # a relay on this machine keeps a core for itself
        (0, 8, 1000, 4, "localhost", 3),
        (0, 8, 1000, 4, "[::1]", 3),
        (0, 8, 1000, 8, "127.0.0.2", 4),
        (0, 8, 1000, 1, "127.0.0.1", 1),
        (0, 8, 1000, 1, "mail.example.org", 1),
        (3, 8, 1000, 2, "127.0.0.1", 3),  # what the config says wins
        (3, 2, 1000, 2, "mail.example.org", 2),  # never more processes than connections
        (3, 8, 150, 2, "mail.example.org", 2),  # at least 100 recipients each
        (3, 8, 201, 2, "mail.example.org", 3),
        (3, 8, 0, 2, "mail.example.org", 1),
        (1, 8, 5000, 2, "mail.example.org", 1),
    ],
)
def test_how_many_processes_a_send_uses(
    site, monkeypatch, processes, concurrency, recipients, cores, relay, expected
):
    transport = f"smtp://{relay}:25"
    site.write_config(smtp_config(25, f"processes = {processes}\nconcurrency = {concurrency}\n", transport))
    monkeypatch.setattr(delivery, "_cores", lambda: cores)
    assert delivery._process_count(site.config, recipients) == expected


def test_the_cores_a_send_counts_are_those_it_may_run_on(monkeypatch):
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # as taskset or a container's cpuset would pin it
    try:
        assert delivery._cores() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert delivery._cores() == len(allowed)
    monkeypatch.delattr(os, "sched_getaffinity")  # a system that cannot tell: the machine's count
    assert delivery._cores() == (os.cpu_count() or 1)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert delivery._cores() == 1


def test_a_split_send_that_is_refused_everywhere_stops_and_says_why(site, smtp):
    rows = [(f"user{n}@example.com", "", "", "active", "") for n in range(200)]
    issue = prepare(site, smtp.port, "processes = 2\nmax_errors = 3\n", rows=rows)
    refuse_everyone(smtp)
    with pytest.raises(
        DeliveryError, match=r"^2026-11-01: paused: the server refused 3 recipients in a row permanently"
    ):
        send(site, issue)
    assert read_ledger(site.config.paths.state, issue.key).outcomes == {}


def test_a_send_split_over_three_processes_mails_everyone_once(site, smtp):
    rows = [(f"user{n}@example.com", "", "", "active", "") for n in range(300)]
    issue = prepare(site, smtp.port, "processes = 3\n", rows=rows)
    report = send(site, issue)
    assert (report.processes, report.sent) == (3, 300)
    assert smtp.per_recipient() == dict.fromkeys((row[0] for row in rows), 1)
    assert send(site, issue).already_done == 300


# -- connections -------------------------------------------------------------------------------


def test_each_connection_carries_max_per_connection_messages(site, smtp):
    issue = prepare(
        site,
        smtp.port,
        "concurrency = 1\nmax_per_connection = 2\n",
        rows=[(a, "", "", "active", "") for a in USERS[:5]],
    )
    sessions = []

    async def note_session(session, envelope):
        sessions.append(id(session))

    smtp.before_data(note_session)
    assert send(site, issue).sent == 5
    per_session = [sessions.count(s) for s in dict.fromkeys(sessions)]
    assert per_session == [2, 2, 1]


def test_a_connection_dropped_once_is_retried_even_with_few_errors_allowed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 2\n")
    smtp.faults.drop_data = 1
    report = send(site, issue)
    assert (report.sent, report.deferred) == (6, 0)
    assert smtp.per_recipient() == dict.fromkeys(USERS, 1)


def test_connection_failures_are_counted_afresh_after_each_delivery(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\nmax_attempts = 5\n")

    async def two_drops_after_the_first_delivery(session, envelope):
        if len(smtp.received) == 1 and not dropped:
            dropped.append(True)
            smtp.faults.drop_data = 2

    dropped = []
    smtp.before_data(two_drops_after_the_first_delivery)
    report = send(site, issue)  # two failures in a row, fewer than max_errors: no pause
    assert (report.sent, report.deferred, report.failed) == (6, 0, 0)
    assert dropped and smtp.per_recipient() == dict.fromkeys(USERS, 1)


def test_the_rate_limit_spaces_a_real_send(site, smtp):
    issue = prepare(site, smtp.port, "rate = 10\n", rows=[(a, "", "", "active", "") for a in USERS[:4]])
    report = send(site, issue)
    assert report.sent == 4
    assert report.seconds >= 0.3  # four messages at ten a second: three intervals at least


# -- progress ----------------------------------------------------------------------------------


def test_a_send_off_a_terminal_logs_a_progress_line_every_ten_seconds(monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(delivery.time, "monotonic", lambda: clock[0])
    totals = dict.fromkeys(shard.COUNTERS, 0)

    class Shared:
        def totals(self):
            return dict(totals)

    progress = shard.Progress("2026-11-01", 100, Shared(), enabled=False)
    totals.update(sent=30, failed=2)
    clock[0] += 9
    progress.refresh()
    assert capsys.readouterr().err == ""
    clock[0] += 1
    progress.refresh()
    assert capsys.readouterr().err == "2026-11-01: 32/100, sent 30, failed 2, 3 msg/s, about 23s left\n"
    clock[0] += 5
    progress.refresh()
    assert capsys.readouterr().err == ""
    progress.close()


# -- the test copy -------------------------------------------------------------------------------


def test_a_test_copy_goes_to_one_address_outside_the_ledger(site, smtp):
    issue = prepare(site, smtp.port)
    receipt = send_test_copy(site.config, issue, " Editor@Example.com ", NOW)
    assert receipt.startswith("test copy sent to Editor@example.com ")
    assert smtp.per_recipient() == {"editor@example.com": 1}
    assert smtp.received[0].message["Subject"] == "[测试] " + issue.full_title  # the site's language, zh_CN
    assert not (site.config.paths.state / "ledger").exists()
    smtp.faults.reject = {"editor@example.com"}
    with pytest.raises(DeliveryError, match=r"test copy to editor@example\.com not sent"):
        send_test_copy(site.config, issue, "editor@example.com", NOW)


def test_refusals_broken_by_a_delivery_are_not_in_a_row_and_count_as_failed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\n")
    refused = {USERS[0], USERS[1], USERS[3], USERS[4]}  # two, a delivery, two, a delivery
    original = smtp.handle_RCPT

    async def refuse_some(server, session, envelope, address, rcpt_options):
        if address.lower() in refused:
            return "550 Rejected"
        return await original(server, session, envelope, address, rcpt_options)

    smtp.handle_RCPT = refuse_some
    report = send(site, issue)
    assert (report.sent, report.failed, report.deferred) == (2, 4, 0)
    assert statuses(site) == {a: "failed" if a in refused else "sent" for a in USERS}
    assert read_tally(site.config.paths.state, issue.key).finished


@pytest.mark.parametrize(
    ("said", "exitcodes", "expected"),
    [
        ([], [0, 0], []),
        ([(1, "paused: refused 3 in a row")], [0, 0], ["paused: refused 3 in a row"]),
        # a process killed while the other says why it stopped: both are told, in shard order
        (
            [(1, "paused: quota")],
            [-9, 0],
            ["sending process 1 of 2 was killed by SIGKILL before its part was done", "paused: quota"],
        ),
        ([], [0, 0, 1], ["sending process 3 of 3 ended with status 1 before its part was done"]),
        # a process that said why and then exited non-zero is told once, by its own words
        ([(0, "stopped: TLS failed"), (0, "again")], [1, 0], ["stopped: TLS failed"]),
    ],
)
def test_every_sending_process_that_stopped_early_is_named(said, exitcodes, expected):
    assert delivery.stop_reasons(said, exitcodes) == expected


def test_a_sending_process_that_fails_to_start_stops_the_others(site, smtp, monkeypatch):
    """A failure outside the send loop (here a bug while a process sets up) stops every process."""
    import asyncio

    rows = [(f"user{n}@example.com", "", "", "active", "") for n in range(200)]
    issue = prepare(site, smtp.port, "processes = 2\n", rows=rows)
    sender_init, deliver = shard.Sender.__init__, shard.Sender.deliver

    def init(self, job, *args, **kwargs):
        if job.shard == 0:
            raise RuntimeError("a bug while setting up")
        sender_init(self, job, *args, **kwargs)

    async def deliver_once_told(self, *args, **kwargs):
        # the other process waits for the stop flag (up to 10 s) before its first message
        await asyncio.get_running_loop().run_in_executor(None, self.shared.stop.wait, 10)
        return await deliver(self, *args, **kwargs)

    monkeypatch.setattr(shard.Sender, "__init__", init)  # forked processes inherit both
    monkeypatch.setattr(shard.Sender, "deliver", deliver_once_told)
    with pytest.raises(DeliveryError, match="RuntimeError: a bug while setting up; nobody was failed"):
        mail_issue(site.config, issue, NOW, progress=False)
    assert smtp.received == []  # the other process saw the stop and sent nothing
