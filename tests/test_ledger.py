"""The delivery ledger as a send relies on it: who is done, after retries, crashes and resends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import NOW, smtp_config, write_subscribers
from digest.newsletter.catalog import load_issue
from digest.pipeline import mail_issue
from digest.send.ledger import (
    Outcome,
    ledger_path,
    ledger_stems,
    read_ledger,
    read_tally,
    shard_sizes,
)
from digest.send.ledger_writer import LedgerWriter

AT = "2026-11-22T04:00:00+00:00"
EVERYONE = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]


def prepare(site, port, addresses=EVERYONE, extra=""):
    site.write_config(smtp_config(port, "concurrency = 1\n" + extra))
    site.copy_examples()
    write_subscribers(site.root / "subscribers.csv", [(a, "", "", "active", "") for a in addresses])
    return load_issue(site.config, "2026-11-01")


def send(site, issue, **kwargs):
    return mail_issue(site.config, issue, NOW, progress=False, **kwargs)


def outcome(to, status, round_=1, detail=""):
    return Outcome(to, status, 250 if status == "sent" else None, f"<{to}.{status}>", detail, round_, AT)


def write_lines(path, *records):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as handle:
        for record in records:
            handle.write(record.line() if isinstance(record, Outcome) else record)


def test_deferred_then_sent_in_one_round_reads_as_sent_and_is_not_mailed_again(site, smtp):
    issue = prepare(site, smtp.port, ["a@example.com", "b@example.com"], "max_attempts = 2\n")
    smtp.faults.data_replies = ["421 4.3.2 try again later"] * 2  # the first recipient's two attempts
    first = send(site, issue)
    assert (first.sent, first.deferred) == (1, 1)
    second = send(site, issue)
    assert (second.sent, second.deferred, second.already_done) == (1, 0, 1)
    state = site.config.paths.state
    lines = [json.loads(line) for line in ledger_path(state, issue.key).read_bytes().splitlines()]
    assert [(r["to"], r["status"], r["round"]) for r in lines if "to" in r] == [
        ("a@example.com", "deferred", 1),
        ("b@example.com", "sent", 1),
        ("a@example.com", "sent", 1),
    ]  # one recipient, two outcomes in one round
    summary = read_ledger(state, issue.key)
    assert {to: o.status for to, o in summary.outcomes.items()} == {
        "a@example.com": "sent",
        "b@example.com": "sent",
    }
    assert summary.done() == {"a@example.com", "b@example.com"}
    tally = read_tally(state, issue.key)
    assert (tally.finished, tally.count("sent"), tally.count("deferred"), tally.done) == (True, 2, 0, 2)
    third = send(site, issue)
    assert (third.sent, third.already_done) == (0, 2)
    assert smtp.per_recipient() == {"a@example.com": 1, "b@example.com": 1}


# Whichever order two outcomes of one recipient are read in (shards are read one after another),
# the most final one wins: sent, then failed, skipped, deferred; between equals, the later one.
ORDERS = [
    ("deferred", "sent", "sent"),
    ("sent", "deferred", "sent"),
    ("failed", "sent", "sent"),
    ("sent", "failed", "sent"),
    ("deferred", "failed", "failed"),
    ("failed", "deferred", "failed"),
    ("skipped", "deferred", "skipped"),
    ("deferred", "skipped", "skipped"),
    ("skipped", "failed", "failed"),
    ("failed", "skipped", "failed"),
]


@pytest.mark.parametrize(("first", "then", "wins"), ORDERS)
@pytest.mark.parametrize("where", ["one file", "two shards"])
def test_the_most_final_of_two_outcomes_wins(tmp_path, first, then, wins, where):
    write_lines(ledger_path(tmp_path, "2026-11-01"), outcome("a@example.com", first))
    shard = 1 if where == "two shards" else 0
    write_lines(ledger_path(tmp_path, "2026-11-01", shard), outcome("a@example.com", then))
    summary = read_ledger(tmp_path, "2026-11-01")
    assert summary.outcomes["a@example.com"].status == wins
    assert summary.done() == ({"a@example.com"} if wins != "deferred" else set())


def test_of_two_deferred_outcomes_the_later_is_kept(tmp_path):
    path = ledger_path(tmp_path, "2026-11-01")
    write_lines(
        path,
        outcome("a@example.com", "deferred", detail="first"),
        outcome("a@example.com", "deferred", detail="second"),
    )
    summary = read_ledger(tmp_path, "2026-11-01")
    assert summary.outcomes["a@example.com"].detail == "second"
    assert summary.done() == set() and summary.tally().count("deferred") == 1


# A child that appends two outcomes through the real writer, then starts the third line's bytes and
# is killed with SIGKILL before it can finish them: what a crash in the middle of a write leaves.
TEAR = """
import asyncio, os, sys
from pathlib import Path
from digest.send.ledger import Outcome
from digest.send.ledger_writer import LedgerWriter

async def main(writer):
    for to in sys.argv[2:]:
        await writer.record(Outcome(to, "sent", 250, f"<{to}>", "250 ok", 1, "2026-11-22T04:00:00+00:00"))

with LedgerWriter(Path(sys.argv[1])) as writer:
    asyncio.run(main(writer))
    line = Outcome("c@example.com", "sent", 250, "<c>", "250 ok", 1, "2026-11-22T04:00:01+00:00").line()
    os.write(writer._fd, line[: len(line) // 2])
    print("torn", flush=True)
    sys.stdin.read()
"""


def tear(path, *done):
    child = subprocess.Popen(
        [sys.executable, "-c", TEAR, str(path), *done],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "torn\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    assert not path.read_bytes().endswith(b"\n")  # the last line is torn


@pytest.mark.parametrize(
    "done", [("a@example.com", "b@example.com"), ()], ids=["after two lines", "first line"]
)
def test_a_line_torn_by_sigkill_mid_write_loses_no_later_record(site, smtp, done):
    issue = prepare(site, smtp.port)
    path = ledger_path(site.config.paths.state, issue.key)
    tear(path, *done)
    assert read_ledger(site.config.paths.state, issue.key).done() == set(done)  # the torn one is not done
    first = send(site, issue)
    assert (first.sent, first.already_done) == (4 - len(done), len(done))
    summary = read_ledger(site.config.paths.state, issue.key)
    assert {to: o.status for to, o in summary.outcomes.items()} == dict.fromkeys(EVERYONE, "sent")
    again = send(site, issue)
    assert (again.sent, again.already_done) == (0, 4)
    assert smtp.per_recipient() == dict.fromkeys([a for a in EVERYONE if a not in done], 1)
    assert all(json.loads(line) for line in path.read_bytes().splitlines())  # every line whole


def test_a_ledger_ending_in_a_whole_line_is_appended_to_as_it_is(tmp_path):
    path = ledger_path(tmp_path, "2026-11-01")
    write_lines(path, outcome("a@example.com", "sent"), outcome("b@example.com", "failed"))
    before = path.read_bytes()
    with LedgerWriter(path) as writer:
        asyncio.run(writer.record(outcome("c@example.com", "sent")))
    assert path.read_bytes() == before + outcome("c@example.com", "sent").line()
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = ledger_path(tmp_path, "2026-11-02")
    with LedgerWriter(fresh):
        pass
    assert fresh.stat().st_mode & 0o777 == 0o644 & ~umask  # readable, as the rest of the state


def test_lines_that_are_not_outcomes_are_passed_over(tmp_path):
    path = ledger_path(tmp_path, "2026-11-01")
    write_lines(
        path,
        outcome("a@example.com", "sent"),
        b"\n",
        b"   \n",
        b"[1, 2]\n",
        b'{"to": "x@example.com"}\n',  # no status
        b'{"to": "y@example.com", "status": "sent", "round": "one"}\n',
        b"\xff\xfe not utf-8\n",
        b"{not json\n",
        outcome("b@example.com", "sent"),
    )
    summary = read_ledger(tmp_path, "2026-11-01")
    assert sorted(summary.outcomes) == ["a@example.com", "b@example.com"]
    assert sorted(read_ledger(tmp_path, "2026-11-01", only=["B@example.com", "x@example.com"]).outcomes) == [
        "b@example.com"
    ]


def test_a_resend_round_counts_only_its_own_outcomes(tmp_path):
    path = ledger_path(tmp_path, "2026-11-01")
    write_lines(path, outcome("a@example.com", "sent"), outcome("b@example.com", "sent"))
    first = read_ledger(tmp_path, "2026-11-01")
    assert (first.round, first.started, first.finished, first.exists) == (1, False, False, True)
    with LedgerWriter(path) as writer:
        writer.finish_round(1, NOW, first.tally(), {})
        assert read_ledger(tmp_path, "2026-11-01").finished
        writer.start_round(2, NOW)
    write_lines(path, outcome("a@example.com", "sent", round_=2))
    second = read_ledger(tmp_path, "2026-11-01")
    assert (second.round, second.started, second.finished) == (2, True, False)
    assert sorted(second.outcomes) == ["a@example.com"] and second.done() == {"a@example.com"}
    only = read_ledger(tmp_path, "2026-11-01", only=["b@example.com"])
    assert (only.round, only.outcomes) == (2, {})  # the round marker is read even when selecting
    assert not read_ledger(tmp_path, "2026-11-02").exists


def test_the_outcomes_of_chosen_addresses_are_read_from_every_shard(tmp_path):
    write_lines(
        ledger_path(tmp_path, "2026-11-01"),
        outcome("a@example.com", "failed"),
        outcome("b@example.com", "sent"),
    )
    write_lines(ledger_path(tmp_path, "2026-11-01", 1), outcome("c@example.com", "failed"))
    write_lines(ledger_path(tmp_path, "2026-11-01", 2), outcome("d@example.com", "sent"))
    write_lines(ledger_path(tmp_path, "2026-11-02"), outcome("a@example.com", "sent"))
    chosen = read_ledger(tmp_path, "2026-11-01", only=["A@Example.com", "c@example.com"])
    assert {to: o.status for to, o in chosen.outcomes.items()} == {
        "a@example.com": "failed",
        "c@example.com": "failed",
    }
    assert chosen.outcomes["a@example.com"].message_id == "<a@example.com.failed>"
    assert ledger_stems(tmp_path) == ["2026-11-01", "2026-11-02"]
    assert shard_sizes(tmp_path, "2026-11-01") == {
        "2026-11-01.1.jsonl": len(outcome("c@example.com", "failed").line()),
        "2026-11-01.2.jsonl": len(outcome("d@example.com", "sent").line()),
    }
    tally = read_ledger(tmp_path, "2026-11-01").tally()
    assert (tally.count("failed"), tally.count("sent"), tally.recipients, tally.done) == (2, 2, 4, 4)


def test_a_refusal_is_a_failure_with_a_code(tmp_path):
    assert Outcome("a@example.com", "failed", 550).refused
    assert not Outcome("a@example.com", "failed", None).refused  # an address that cannot be mailed
    assert not Outcome("a@example.com", "deferred", 421).refused
    assert not Outcome("a@example.com", "sent", 250).refused


def test_an_outcome_line_keeps_what_was_recorded(tmp_path):
    record = json.loads(Outcome("a@example.com", "failed", 550, "<m>", "x" * 400, 2, AT).line())
    assert record == {"to": "a@example.com", "status": "failed", "code": 550, "message_id": "<m>",
                      "detail": "x" * 300, "round": 2, "at": AT}  # fmt: skip
    assert json.loads(Outcome("a@example.com", "sent").line()) == {
        "to": "a@example.com",
        "status": "sent",
        "round": 1,
        "at": "",
    }
    write_lines(ledger_path(tmp_path, "s"), Outcome("a@example.com", "failed", 550, "<m>", "refused", 2, AT))
    write_lines(ledger_path(tmp_path, "s"), b'{"start_round": 2}\n')
    assert read_ledger(tmp_path, "s").outcomes["a@example.com"] == Outcome(
        "a@example.com", "failed", 550, "<m>", "refused", 2, AT
    )


def test_a_finished_round_is_known_from_its_marker_alone(tmp_path):
    """`digest run` and `digest status` read the last line of a mailed issue's ledger, not every line."""
    path = ledger_path(tmp_path, "2026-11-01")
    write_lines(path, outcome("a@example.com", "sent"), outcome("b@example.com", "failed"))
    with LedgerWriter(path) as writer:
        writer.finish_round(1, NOW, read_ledger(tmp_path, "2026-11-01").tally(), {})
    marker = path.read_bytes().splitlines()[-1]
    path.write_bytes(b"x" * 5000 + b"\n" + marker + b"\n")  # the recipients' lines gone: the marker tells
    tally = read_tally(tmp_path, "2026-11-01")
    assert (tally.round, tally.finished, tally.exists) == (1, True, True)
    assert (tally.count("sent"), tally.count("failed"), tally.recipients, tally.done) == (1, 1, 2, 2)


def test_a_ledger_that_cannot_be_read_is_one_clear_error(tmp_path):
    from digest.errors import StateError

    ledger_path(tmp_path, "2026-11-01").mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(StateError, match="cannot read the delivery ledger") as caught:
        read_ledger(tmp_path, "2026-11-01")
    assert caught.value.path == ledger_path(tmp_path, "2026-11-01")
    with pytest.raises(StateError, match="cannot read the delivery ledger"):
        read_tally(tmp_path, "2026-11-01")


def test_a_line_without_a_round_belongs_to_the_first(tmp_path):
    write_lines(ledger_path(tmp_path, "2026-11-01"), b'{"to": "a@example.com", "status": "sent"}\n')
    assert read_ledger(tmp_path, "2026-11-01").done() == {"a@example.com"}


def test_a_full_disk_stops_the_send_with_a_clear_error(site, smtp, monkeypatch):
    import errno

    from digest.errors import DeliveryError

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    issue = prepare(site, smtp.port)
    monkeypatch.setattr(LedgerWriter, "_write", disk_full)
    full = r"ledger.*cannot write the delivery ledger: No space left on device; nobody was failed"
    with pytest.raises(DeliveryError, match=full):
        send(site, issue)
    assert len(smtp.received) == 1  # the worker stopped at the first outcome it could not record


def test_many_sends_in_one_process_leave_no_file_open(tmp_path):
    """`digest watch` sends for months in one process."""
    before = len(os.listdir("/proc/self/fd"))
    for n in range(20):
        with LedgerWriter(ledger_path(tmp_path, f"2026-11-{n + 1:02}")) as writer:
            asyncio.run(writer.record(outcome("a@example.com", "sent")))
    assert len(os.listdir("/proc/self/fd")) == before


def test_lines_that_arrive_during_an_fsync_share_the_next_one(tmp_path, monkeypatch):
    """Group commit: while one fsync runs (in its thread), the loop goes on; the next lines wait together."""
    import threading

    real_fsync = os.fsync
    running, release = threading.Event(), threading.Event()

    def slow_fsync(fd: int) -> None:
        running.set()
        assert release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    async def scenario(writer: LedgerWriter) -> None:
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(writer.record(outcome("a@example.com", "sent")))
        assert await loop.run_in_executor(None, running.wait, 10)  # the first line's fsync is running
        rest = [asyncio.ensure_future(writer.record(outcome(f"r{n}@example.com", "sent"))) for n in range(5)]
        loop.call_soon(release.set)  # once the five have queued their lines
        await asyncio.gather(first, *rest)

    with LedgerWriter(ledger_path(tmp_path, "x"), quick_fsync=0) as writer:  # a slow disk: fsyncs in a thread
        asyncio.run(scenario(writer))
        assert (writer.commits, writer.lines) == (2, 6)
    assert len(read_ledger(tmp_path, "x").outcomes) == 6


def test_a_slow_fsync_moves_to_a_thread_and_a_quick_one_back_to_the_loop(tmp_path, monkeypatch):
    """A disk that answers at once is fsynced from the event loop; one that makes it wait is not."""
    import threading
    import time

    real_fsync = os.fsync
    on_loop: list[bool] = []
    slow = [
        True,
        False,
        False,
    ]  # the first fsync takes longer than the writer's limit, then the disk is quick

    def timed_fsync(fd: int) -> None:
        on_loop.append(threading.current_thread() is threading.main_thread())
        if slow[len(on_loop) - 1]:
            time.sleep(0.02)  # the disk itself, not a wait for another actor
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", timed_fsync)

    async def one_at_a_time(writer: LedgerWriter) -> None:
        for n in range(3):
            await writer.record(outcome(f"r{n}@example.com", "sent"))

    with LedgerWriter(ledger_path(tmp_path, "x"), quick_fsync=0.01) as writer:
        asyncio.run(one_at_a_time(writer))
        assert (writer.commits, writer.lines) == (3, 3)
    assert on_loop == [True, False, True]
    assert len(read_ledger(tmp_path, "x").outcomes) == 3


@pytest.mark.parametrize(
    ("broken", "quick"),
    [("fsync", 0.002), ("fsync", 0), ("write", 0.002)],
    ids=["an fsync on the loop", "an fsync in its thread", "a write"],
)
def test_a_disk_that_fails_fails_every_line_after_and_keeps_none_waiting(
    tmp_path, monkeypatch, broken, quick
):
    import errno

    from digest.errors import StateError

    def failing(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    async def two_turns(writer: LedgerWriter) -> None:
        for to in ("a@example.com", "b@example.com"):  # the second after the first failed: it fails too
            with pytest.raises(StateError, match="cannot write the delivery ledger: Input/output error"):
                await asyncio.wait_for(writer.record(outcome(to, "sent")), 10)

    with LedgerWriter(ledger_path(tmp_path, "x"), quick_fsync=quick) as writer:
        if broken == "fsync":
            monkeypatch.setattr(os, "fsync", failing)
        else:
            monkeypatch.setattr(writer, "_write", failing)
        asyncio.run(two_turns(writer))
        assert (writer.commits, writer.lines) == (0, 0)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (b'{"a": 1}\n{"b": 2}\n', b'{"a": 1}\n{"b": 2}\n'),  # whole: left alone
        (b'{"a": 1}\n{"b": 2}\n{"c": ', b'{"a": 1}\n{"b": 2}\n'),  # torn last line: cut
        (b'{"a": 1}\n' + b"x" * 50, b'{"a": 1}\n'),  # a torn line longer than a block
        (b"x" * 50, b""),  # not one whole line
        (b"\n" + b"x" * 16, b"\n"),  # the only line ending is the first byte, found in the last block
        (b"", b""),
    ],
)
def test_opening_a_ledger_cuts_only_a_torn_last_line(tmp_path, monkeypatch, text, kept):
    from digest.send import ledger_writer

    monkeypatch.setattr(ledger_writer, "REPAIR_BLOCK", 8)  # so the search back crosses several blocks
    path = ledger_path(tmp_path, "x")
    path.parent.mkdir(parents=True)
    path.write_bytes(text)
    with LedgerWriter(path):
        pass
    assert path.read_bytes() == kept
