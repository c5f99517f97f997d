"""The send's orchestration, fast, in one process against aiosmtpd on 127.0.0.1.

What a send does with the list before it reads it, where a one-process send
keeps its ledger, what happens to refusals held back when the send ends, a
ledger that cannot be written, bounces counted across issues, and a test copy
of an issue with nothing to mail.
"""

from __future__ import annotations

import errno
import os

import pytest

from conftest import KNOWN, NOW, prepare_example, smtp_config
from digest.errors import DeliveryError, ReleaseError
from digest.newsletter.catalog import load_issue
from digest.pipeline import mail_issue
from digest.send.delivery import SendReport, mark_bounces, send_test_copy
from digest.send.ledger import Outcome, ledger_path, read_ledger, read_tally, scan_round
from digest.send.ledger_writer import LedgerWriter
from digest.subscribers.changes import set_status
from digest.subscribers.journal import journal_path
from digest.subscribers.reading import read_subscribers

USERS = [f"user{n}@example.com" for n in range(5)]


def prepare(site, port, extra="", rows=None):
    return prepare_example(site, port, USERS, extra, rows)


def defer_the_last_two(smtp):
    """The server defers the last two users' messages from now on; its own handler, to put back."""
    original = smtp.handle_DATA

    async def defer(server, session, envelope):
        if envelope.rcpt_tos[0] in USERS[3:]:
            return "451 4.3.0 try again later"
        return await original(server, session, envelope)

    smtp.handle_DATA = defer
    return original


def send(site, issue):
    return mail_issue(site.config, issue, NOW, progress=False)


def statuses(site, stem="2026-11-01"):
    return {to: o.status for to, o in read_ledger(site.config.paths.state, stem).outcomes.items()}


def test_a_send_first_writes_the_lists_pending_changes_into_the_file(site, smtp):
    issue = prepare(site, smtp.port)
    path = site.root / "subscribers.csv"
    set_status(path, KNOWN, USERS[0], "unsubscribed")  # in the journal, not yet in the file
    assert "unsubscribed" not in path.read_text(encoding="utf-8")
    report = send(site, issue)
    assert report.sent == 4 and USERS[0] not in smtp.per_recipient()
    assert f"{USERS[0]},,,unsubscribed," in path.read_text(encoding="utf-8")
    journal = journal_path(path)
    assert not journal.exists() or journal.read_bytes() == b""


def test_a_one_process_send_keeps_its_outcomes_in_the_issues_own_ledger_file(site, smtp):
    issue = prepare(site, smtp.port)
    assert send(site, issue).sent == 5
    ledgers = sorted(p.name for p in (site.config.paths.state / "ledger").glob("*.jsonl"))
    assert ledgers == ["2026-11-01.jsonl"]
    assert statuses(site) == dict.fromkeys(USERS, "sent")


def test_a_send_where_everyone_is_skipped_ends_without_a_pause(site, smtp):
    rows = [(a, "", "apps", "active", "") for a in USERS[:3]]  # the issue has no apps items
    issue = prepare(site, smtp.port, rows=rows)
    report = send(site, issue)
    assert (report.sent, report.skipped, report.failed) == (0, 3, 0)
    assert statuses(site) == dict.fromkeys(USERS[:3], "skipped")
    assert smtp.received == []


def test_refusals_held_back_at_the_end_of_a_send_that_delivered_are_recorded_as_failed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\n")
    original = smtp.handle_RCPT

    async def refuse_the_last_two(server, session, envelope, address, rcpt_options):
        if address.lower() in USERS[3:]:
            return "550 Rejected"  # names no cause: held back until the send shows it can deliver
        return await original(server, session, envelope, address, rcpt_options)

    smtp.handle_RCPT = refuse_the_last_two
    report = send(site, issue)
    assert (report.sent, report.failed) == (3, 2)
    assert statuses(site) == {**dict.fromkeys(USERS[:3], "sent"), **dict.fromkeys(USERS[3:], "failed")}


def test_a_ledger_that_cannot_be_written_stops_the_send_before_another_message_goes(site, smtp, monkeypatch):
    issue = prepare(site, smtp.port, "concurrency = 1\n")
    ledger = str(ledger_path(site.config.paths.state, issue.key))
    fsync = os.fsync

    def full_disk(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == ledger:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)  # the disk under the ledger is full
    with pytest.raises(
        DeliveryError, match="cannot write the delivery ledger: No space left on device"
    ) as raised:
        send(site, issue)
    assert len(smtp.received) == 1  # the next message's body waited for its outcome, and never went
    assert "So far: 2026-11-01: sent 0," in str(raised.value)  # an outcome not on disk is not counted


def _ledger(site, stem: str, outcomes: dict[str, str]) -> None:
    with LedgerWriter(ledger_path(site.config.paths.state, stem)) as ledger:
        for to, status in outcomes.items():
            code = 550 if status == "failed" else 250
            ledger._write(Outcome(to, status, code, at=f"{stem}T00:00:00+00:00").line())


def test_a_delivery_between_two_refusals_starts_the_count_again(site, smtp):
    prepare(site, smtp.port, "bounce_after = 2\n")
    _ledger(site, "2026-09-01", {USERS[0]: "failed", USERS[1]: "failed"})
    _ledger(site, "2026-09-15", {USERS[0]: "sent", USERS[1]: "failed"})
    _ledger(site, "2026-10-01", {USERS[0]: "failed", USERS[1]: "sent"})
    _ledger(site, "2026-10-15", {USERS[0]: "sent", USERS[1]: "failed"})
    assert mark_bounces(site.config, read_ledger(site.config.paths.state, "2026-10-15")) == []
    _ledger(site, "2026-11-01", {USERS[0]: "failed", USERS[1]: "failed"})
    assert mark_bounces(site.config, read_ledger(site.config.paths.state, "2026-11-01")) == [USERS[1]]
    listing = read_subscribers(site.root / "subscribers.csv", KNOWN)
    assert [listing.find(a).status for a in USERS[:2]] == ["active", "bounced"]


def test_a_test_copy_of_an_issue_with_nothing_to_mail_is_refused(site, smtp):
    site.write_config(smtp_config(smtp.port))
    site.write_issue("2026-12-01.md", "# 简报 (2026-12-01)\n\n本期暂停一次。\n")
    issue = load_issue(site.config, "2026-12-01")
    with pytest.raises(ReleaseError, match="the issue has no items to mail"):
        send_test_copy(site.config, issue, "editor@example.com", NOW)
    assert smtp.received == []


def test_a_bug_in_a_one_process_send_is_raised_as_itself_not_told_as_a_pause(site, smtp, monkeypatch):
    from digest.send import shard

    issue = prepare(site, smtp.port)

    async def broken(self, *args, **kwargs):
        raise RuntimeError("a bug while sending")

    monkeypatch.setattr(shard.Sender, "deliver", broken)
    with pytest.raises(RuntimeError, match="a bug while sending"):
        send(site, issue)
    assert smtp.received == []


def test_fifty_mailbox_refusals_before_anyone_is_reached_pause_the_send(site, smtp):
    rows = [(f"dead{n:02d}@example.com", "", "", "active", "") for n in range(51)]
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 100\n", rows=rows)

    async def no_such_mailbox(server, session, envelope, address, rcpt_options):
        return f"550 5.1.1 <{address}>: no such mailbox"  # each refusal names the mailbox

    smtp.handle_RCPT = no_such_mailbox
    paused = r"refused every recipient so far \(50, none delivered; last: 550 5\.1\.1 <dead49@example\.com>"
    with pytest.raises(DeliveryError, match=paused):
        send(site, issue)
    assert statuses(site) == {}  # nobody failed for it: the next send tries them all again


def test_mailbox_refusals_before_anyone_is_reached_are_not_counted_as_unexplained(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 3\n")
    smtp.faults.reject = set(USERS[:3])  # three dead mailboxes first, then deliveries
    report = send(site, issue)
    assert (report.sent, report.failed) == (2, 3)
    assert statuses(site) == {**dict.fromkeys(USERS[:3], "failed"), **dict.fromkeys(USERS[3:], "sent")}


def test_a_reader_who_leaves_during_the_send_is_counted_and_not_mailed(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\n")

    async def the_last_reader_leaves(session, envelope):
        if USERS[1] in envelope.rcpt_tos:
            set_status(site.root / "subscribers.csv", KNOWN, USERS[4], "unsubscribed")

    smtp.before_data(the_last_reader_leaves)
    report = send(site, issue)
    assert (report.sent, report.unsubscribed_during) == (4, 1)
    assert USERS[4] not in smtp.per_recipient()
    assert "1 unsubscribed meanwhile" in report.summary()


def test_nothing_more_is_recorded_once_a_send_has_stopped(site, smtp):
    rows = [(USERS[0], "", "", "active", "")] + [(a, "", "apps", "active", "") for a in USERS[1:3]]
    issue = prepare(site, smtp.port, "concurrency = 1\n", rows=rows)  # the issue has no apps items

    async def deny_the_first(server, session, envelope, address, rcpt_options):
        return "554 5.7.1 Relay access denied"  # a policy refusal: the send stops

    smtp.handle_RCPT = deny_the_first
    with pytest.raises(DeliveryError, match="policy"):
        send(site, issue)
    assert statuses(site) == {}  # the two queued behind it would have been skipped: not recorded


def test_a_message_waiting_to_be_retried_is_not_sent_once_another_worker_stopped_the_send(site, smtp):
    import asyncio

    issue = prepare(site, smtp.port, "concurrency = 2\nmax_attempts = 3\n")
    original = smtp.handle_RCPT
    quit_said = asyncio.Event()  # used on the server's loop only
    retried = []

    async def deny_the_second(server, session, envelope, address, rcpt_options):
        if address.lower() == USERS[1]:
            return "554 5.7.1 Relay access denied"  # a policy refusal: the send stops
        return await original(server, session, envelope, address, rcpt_options)

    async def quit_noted(server, session, envelope):
        quit_said.set()  # the worker that was refused has stopped and closed its connection
        return "221 Bye"

    async def first_try_fails_after_the_stop(session, envelope):
        if USERS[0] in envelope.rcpt_tos and not retried:
            retried.append(True)
            await quit_said.wait()
            return "451 4.3.0 try again later"  # retried after a backoff: by then the send has stopped
        return None

    smtp.handle_RCPT = deny_the_second
    smtp.handle_QUIT = quit_noted
    smtp.before_data(first_try_fails_after_the_stop)
    with pytest.raises(DeliveryError, match="policy"):
        send(site, issue)
    assert retried and smtp.received == [] and statuses(site) == {}


def test_a_skipped_reader_between_two_unexplained_refusals_does_not_break_their_run(site, smtp):
    rows = [(a, "", "apps" if a == USERS[2] else "", "active", "") for a in USERS]  # no apps items
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_errors = 2\n", rows=rows)
    original = smtp.handle_RCPT

    async def refuse_two(server, session, envelope, address, rcpt_options):
        if address.lower() in (USERS[1], USERS[3]):
            return "550 Rejected"  # names no cause
        return await original(server, session, envelope, address, rcpt_options)

    smtp.handle_RCPT = refuse_two
    with pytest.raises(DeliveryError, match=r"refused 2 recipients in a row permanently"):
        send(site, issue)
    assert statuses(site) == {USERS[0]: "sent", USERS[2]: "skipped"}  # the two refused: not failed


def test_a_session_the_server_ends_after_some_messages_costs_the_next_message_nothing(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_attempts = 1\nmax_errors = 1\n")
    delivered: dict[int, int] = {}

    async def count(session, envelope):
        delivered[id(session)] = delivered.get(id(session), 0) + 1

    async def two_a_session(server, session, envelope, address, mail_options):
        if delivered.get(id(session), 0) >= 2:
            return "421 4.7.0 too many messages in this session, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    smtp.before_data(count)
    smtp.handle_MAIL = two_a_session
    report = send(site, issue)  # one attempt each, one connection failure allowed: neither is spent
    assert (report.sent, report.deferred) == (5, 0)
    assert sorted(delivered.values()) == [1, 2, 2]
    assert smtp.per_recipient() == dict.fromkeys(USERS, 1)


def test_the_summary_names_who_was_due_but_not_reached():
    report = SendReport("2026-11-01", 1, sent=4, deferred=1, unreached=1, seconds=1.0)
    assert report.summary() == (
        "2026-11-01: sent 4, failed 0, deferred 1, 1 of the deferred due this round but not reached "
        "in 1.0s (4 msg/s); run `digest send` again to retry the deferred ones"
    )


PARENT = """
import os, sys, time
from digest.send.shard import _die_with_parent
parent = os.getpid()
if os.fork() == 0:
    _die_with_parent(parent)
    os.write(int(sys.argv[1]), b"ready")
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def test_a_sending_process_dies_with_the_process_that_started_it(tmp_path):
    import select
    import subprocess
    import sys

    read, write = os.pipe()  # the child holds the write end: EOF here once it is gone
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(write)], pass_fds=(write,))
    os.close(write)
    try:
        assert os.read(read, 5) == b"ready"
        parent.kill()  # SIGKILL: nothing of the parent runs to tell the child
        parent.wait()
        assert select.select([read], [], [], 10)[0], "the child outlived its parent by 10 s"
        assert os.read(read, 1) == b""
    finally:
        parent.kill()
        parent.wait()
        os.close(read)


def test_a_ledger_that_cannot_be_written_in_one_sending_process_stops_the_others(site, smtp, monkeypatch):
    import asyncio

    from digest.send import shard

    rows = [(f"user{n}@example.com", "", "", "active", "") for n in range(200)]
    issue = prepare(site, smtp.port, "processes = 2\nconcurrency = 2\n", rows=rows)
    ledger = str(ledger_path(site.config.paths.state, issue.key, 0))
    fsync, deliver = os.fsync, shard.Sender.deliver

    def full_disk(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == ledger:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    waited: list[bool] = []

    async def second_waits_to_be_told(self, *args, **kwargs):
        if self.job.shard == 1 and not waited:  # until the first process fails (10 s at most)
            waited.append(True)
            await asyncio.get_running_loop().run_in_executor(None, self.shared.stop.wait, 10)
        return await deliver(self, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", full_disk)  # the forked processes inherit both
    monkeypatch.setattr(shard.Sender, "deliver", second_waits_to_be_told)
    with pytest.raises(DeliveryError, match="cannot write the delivery ledger: No space left on device"):
        send(site, issue)
    assert len(smtp.received) == 1  # the first process's first message only; the second sent none


def test_a_resumed_round_that_delivered_before_fails_a_dead_mailbox_at_once(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_attempts = 1\n")
    original = defer_the_last_two(smtp)
    first = send(site, issue)
    assert (first.sent, first.deferred) == (3, 2)
    smtp.handle_DATA = original
    smtp.faults.reject = set(USERS[3:])  # now their mailboxes are gone
    second = send(site, issue)  # deliveries earlier in the round: these refusals are the mailboxes'
    assert (second.sent, second.failed) == (0, 2)
    assert statuses(site) == {**dict.fromkeys(USERS[:3], "sent"), **dict.fromkeys(USERS[3:], "failed")}


def test_a_resend_refused_everywhere_pauses_although_the_first_round_was_delivered(site, smtp):
    issue = prepare(site, smtp.port)
    assert send(site, issue).sent == 5
    smtp.faults.reject = set(USERS)
    with pytest.raises(DeliveryError, match=r"refused every recipient so far \(5, none delivered"):
        mail_issue(site.config, issue, NOW, progress=False, resend=True)
    assert read_ledger(site.config.paths.state, issue.key).outcomes == {}  # nobody failed in round 2


def test_a_reader_who_left_and_came_back_during_the_send_is_deferred_to_the_next(site, smtp):
    issue = prepare(site, smtp.port, "concurrency = 1\n")
    path = site.root / "subscribers.csv"

    async def leave_then_return(session, envelope):
        if USERS[1] in envelope.rcpt_tos:
            set_status(path, KNOWN, USERS[2], "unsubscribed")
        if USERS[4] in envelope.rcpt_tos:
            set_status(path, KNOWN, USERS[2], "active")

    smtp.before_data(leave_then_return)
    report = send(site, issue)
    assert (report.sent, report.unsubscribed_during, report.unreached, report.deferred) == (4, 1, 1, 1)
    assert not read_ledger(site.config.paths.state, issue.key).finished
    assert send(site, issue).sent == 1 and smtp.per_recipient()[USERS[2]] == 1


def test_why_a_send_paused_is_noted_until_a_send_runs_to_the_end(site, smtp):
    from digest.send.replies import pause_note

    issue = prepare(site, smtp.port)
    smtp.faults.reject = set(USERS)
    with pytest.raises(DeliveryError):
        send(site, issue)
    note = pause_note(site.config.paths.state, issue.key)
    assert note is not None and note.startswith("paused: the server refused every recipient so far (5")
    smtp.faults.reject = set()
    assert send(site, issue).sent == 5
    assert pause_note(site.config.paths.state, issue.key) is None


def test_a_send_with_no_refusals_marks_nobody_bounced(site, smtp):
    prepare(site, smtp.port, "bounce_after = 1\n")
    _ledger(site, "2026-09-01", {USERS[0]: "failed"})
    _ledger(site, "2026-11-01", {USERS[0]: "sent", USERS[1]: "sent"})
    assert mark_bounces(site.config, read_ledger(site.config.paths.state, "2026-11-01")) == []


def test_a_reader_taken_up_without_an_outcome_is_counted_unreached_and_the_round_stays_open(
    site, smtp, monkeypatch
):
    """However a recipient came to have no outcome, a send that ran to the end does not finish the round."""
    from digest.send import shard
    from digest.send.ledger import read_tally

    issue = prepare(site, smtp.port)
    deliver = shard.Sender.deliver

    async def loses_one(self, connection, subscriber, recipients, before_end=None):
        if subscriber.email == USERS[2]:
            return None  # as if the message were dropped without a word: no outcome, no stop
        return await deliver(self, connection, subscriber, recipients, before_end)

    monkeypatch.setattr(shard.Sender, "deliver", loses_one)
    report = send(site, issue)
    assert (report.sent, report.unreached, report.deferred) == (4, 1, 1)
    assert not read_tally(site.config.paths.state, "2026-11-01").finished


def test_a_resumed_round_that_pauses_counts_only_those_still_to_mail(site, smtp):
    """The pause message counts who is left of the round, not everyone in its snapshot."""
    issue = prepare(site, smtp.port, "concurrency = 1\nmax_attempts = 1\n")
    defer_the_last_two(smtp)
    assert send(site, issue).deferred == 2

    async def over_quota(server, session, envelope):
        return "554 5.7.1 daily sending quota exceeded"

    smtp.handle_DATA = over_quota
    with pytest.raises(DeliveryError, match=r"the 2 not yet mailed wait"):
        send(site, issue)


def test_a_send_that_pauses_leaves_the_rest_waiting_not_deferred(site, smtp):
    """Who a paused send did not reach waits for the next run; it is not counted as deferred or unreached."""
    issue = prepare(site, smtp.port, "concurrency = 1\n")
    original = smtp.handle_DATA

    async def quota_after_two(server, session, envelope):
        if len(smtp.received) >= 2:
            return "554 5.7.1 daily sending quota exceeded"
        return await original(server, session, envelope)

    smtp.handle_DATA = quota_after_two
    with pytest.raises(DeliveryError) as paused:
        send(site, issue)
    assert "the 3 not yet mailed wait" in str(paused.value)
    assert "deferred 0" in str(paused.value) and "not reached" not in str(paused.value)


def test_the_counts_a_finished_round_records_are_what_its_ledger_says(site, smtp):
    """A first run that refused nobody counts the round from its own counters; one that resumes a
    round, or refused someone, reads the ledger back: the finish marker agrees with every line."""
    rows = [(a, "", "apps" if n % 2 else "", "active", "2026-01-01") for n, a in enumerate(USERS)]
    issue = prepare(site, smtp.port, rows=rows)  # the issue has no apps items: two are skipped
    state, stem = site.config.paths.state, issue.stem
    send(site, issue)
    marker = read_tally(state, stem)
    assert marker.finished and marker.counts == scan_round(state, stem).tally().counts
    assert marker.counts == {"sent": 3, "skipped": 2}

    original = defer_the_last_two(smtp)
    resent = mail_issue(site.config, issue, NOW, resend=True, progress=False)
    assert (resent.sent, resent.deferred) == (2, 1) and not read_tally(state, stem).finished
    smtp.handle_DATA = original
    assert send(site, issue).sent == 1  # the round resumed: its earlier outcomes count too
    marker = read_tally(state, stem)
    assert marker.finished and marker.counts == scan_round(state, stem).tally().counts
    assert marker.counts == {"sent": 3, "skipped": 2}
