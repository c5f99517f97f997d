"""Who a round mails, fast: its fixed recipients, their shards, and each status checked before a message.

Real files throughout: the list, its journal and erased file as digest's own list
commands write them, and the round's recipients as the ledger writes them.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import KNOWN, write_subscribers
from digest.send.ledger import write_recipients
from digest.send.recipients import Recipients, fix_recipients, unreached
from digest.subscribers.changes import fold_journal, remove_subscriber, set_status
from digest.subscribers.journal import journal_path

READERS = [f"reader{n}@example.com" for n in range(6)]
ACTIVE = [(a, "", "", "active", "2026-01-01") for a in READERS]


def with_status(rows: list[tuple[str, ...]], address: str, status: str) -> list[tuple[str, ...]]:
    return [(r[0], r[1], r[2], status, r[4]) if r[0] == address else r for r in rows]


def new_round(tmp_path: Path, rows: list[tuple[str, ...]] = ACTIVE) -> tuple[Path, Path]:
    """The list and a round started on it now (its recipients fixed from the list as it is)."""
    path, snapshot = tmp_path / "subscribers.csv", tmp_path / "2026-11-01.round1.due"
    write_subscribers(path, rows)
    assert fix_recipients(path, KNOWN, snapshot, set()) == []
    return path, snapshot


def earlier_round(tmp_path: Path, due: list[str], rows: list[tuple[str, ...]]) -> tuple[Path, Path]:
    """A round an earlier send began (its recipients already fixed), resumed on the list as it is now."""
    path, snapshot = tmp_path / "subscribers.csv", tmp_path / "2026-11-01.round1.due"
    write_recipients(snapshot, [{"key": a, "email": a, "name": "", "sections": []} for a in due])
    write_subscribers(path, rows)
    return path, snapshot


def mailed(recipients: Recipients) -> list[str]:
    """Who would be mailed now, in the round's order (each status checked as before a message)."""
    return [s.email for s in recipients if recipients.still_active(s)]


# -- the round's recipients ----------------------------------------------------------------------


def test_the_round_fixes_active_readers_not_yet_done_and_reports_unreadable_lines(tmp_path):
    path, snapshot = tmp_path / "subscribers.csv", tmp_path / "due"
    rows = [(READERS[0], "Ann", "news;papers", "active", ""), (READERS[1], "", "", "unsubscribed", "")]
    rows += [
        ("broken", "", "", "active", ""),
        (READERS[2], "", "", "active", ""),
        (READERS[3], "", "", "active", ""),
    ]
    write_subscribers(path, rows)
    problems = fix_recipients(path, KNOWN, snapshot, {READERS[3]})
    assert problems == [f"{path}:4: invalid address 'broken': An email address must have an @-sign."]
    due = list(Recipients(path, KNOWN, set(), snapshot))
    assert [(s.email, s.name, s.sections) for s in due] == [
        (READERS[0], "Ann", frozenset({"news", "papers"})),
        (READERS[2], "", frozenset()),
    ]
    assert Recipients(path, KNOWN, {READERS[0]}, snapshot).survey() == 1
    # a send resumed later keeps the round's recipients, and still reports the list's problems
    write_subscribers(path, [*rows, (READERS[4], "", "", "active", "")])
    assert fix_recipients(path, KNOWN, snapshot, set()) == problems
    assert [s.email for s in Recipients(path, KNOWN, set(), snapshot)] == [READERS[0], READERS[2]]


def test_every_recipient_is_in_exactly_one_shard(tmp_path):
    many = [(f"user{n}@example.com", "", "", "active", "") for n in range(60)]
    path, snapshot = new_round(tmp_path, many)
    shards = [[s.email for s in Recipients(path, KNOWN, set(), snapshot, k, 3)] for k in range(3)]
    assert all(shards)  # each process has a part
    assert sorted(a for part in shards for a in part) == sorted(r[0] for r in many)
    assert [s.email for s in Recipients(path, KNOWN, set(), snapshot)] == [r[0] for r in many]


# -- a new round: statuses as the list changes ---------------------------------------------------


def test_a_new_round_mails_everyone_due_and_follows_the_list_saved_in_place(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    assert mailed(recipients) == READERS
    write_subscribers(path, with_status(ACTIVE, READERS[1], "unsubscribed"))  # saved in place
    assert mailed(recipients) == [a for a in READERS if a != READERS[1]]
    # the reader's line deleted by hand next: the last status known stays
    write_subscribers(path, [r for r in ACTIVE if r[0] != READERS[1]])
    assert READERS[1] not in mailed(recipients)
    # a reader deleted by hand during a new round was due when it started: still mailed
    write_subscribers(path, [r for r in ACTIVE if r[0] not in (READERS[1], READERS[2])])
    assert READERS[2] in mailed(recipients)


def test_a_reader_deleted_by_hand_once_a_new_round_has_begun_is_still_mailed(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    assert mailed(recipients) == READERS  # checked against the list the round was fixed from
    write_subscribers(path, ACTIVE[1:])  # the first change of the list the send sees
    assert mailed(recipients) == READERS


def test_a_list_missing_or_unreadable_mid_send_says_nothing_about_anyone(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    write_subscribers(path, with_status(ACTIVE, READERS[0], "unsubscribed"))
    assert mailed(recipients) == READERS[1:]
    path.unlink()
    assert mailed(recipients) == READERS[1:]
    path.write_text("not,a,list\n", encoding="utf-8")
    assert mailed(recipients) == READERS[1:]


# -- a resumed round -------------------------------------------------------------------------------


def test_a_resumed_round_reads_the_list_first_and_skips_who_left_or_was_deleted(tmp_path):
    rows = with_status(ACTIVE[:5], READERS[1], "unsubscribed")  # READERS[5] deleted by hand since
    path, snapshot = earlier_round(tmp_path, READERS, rows)
    recipients = Recipients(path, KNOWN, {READERS[0]}, snapshot)
    assert mailed(recipients) == READERS[2:5]
    path.unlink()  # the list gone for a moment: what it said stands
    assert mailed(recipients) == READERS[2:5]
    write_subscribers(path, [*ACTIVE[:5], ACTIVE[5]])  # both back, later in the send
    assert mailed(recipients) == READERS[1:]


def test_every_shard_reads_the_same_statuses_and_a_changed_list_is_read_again(tmp_path):
    rows = with_status(ACTIVE, READERS[2], "unsubscribed")
    path, snapshot = earlier_round(tmp_path, READERS, rows)
    first, second = (Recipients(path, KNOWN, set(), snapshot, k, 2) for k in range(2))
    both = sorted(mailed(first) + mailed(second))  # the second from the statuses the first read
    assert both == [a for a in READERS if a != READERS[2]]
    write_subscribers(path, with_status(ACTIVE, READERS[4], "bounced"))
    both = sorted(mailed(first) + mailed(second))
    assert both == [a for a in READERS if a != READERS[4]]
    later = Recipients(path, KNOWN, set(), snapshot)
    assert mailed(later) == [a for a in READERS if a != READERS[4]]


# -- the journal and erasures ----------------------------------------------------------------------


def test_changes_made_by_the_list_commands_during_a_send_are_followed(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    assert mailed(recipients) == READERS
    set_status(path, KNOWN, READERS[0], "unsubscribed")  # the journal's first change
    assert mailed(recipients) == READERS[1:]
    set_status(path, KNOWN, READERS[1], "unsubscribed")  # appended to it
    assert mailed(recipients) == READERS[2:]
    set_status(path, KNOWN, READERS[0], "active")  # back again: the latest change counts
    assert mailed(recipients) == [READERS[0], *READERS[2:]]
    remove_subscriber(path, KNOWN, READERS[3], purge=True)
    assert mailed(recipients) == [READERS[0], READERS[2], READERS[4], READERS[5]]
    fold_journal(path, KNOWN)  # the list rewritten with the changes, the erased line gone from it
    assert mailed(recipients) == [READERS[0], READERS[2], READERS[4], READERS[5]]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if READERS[5] not in line), encoding="utf-8")
    assert mailed(recipients) == [READERS[0], READERS[2], READERS[4], READERS[5]]  # deleted, not erased


def test_a_resumed_round_reads_the_journal_from_the_start_and_only_its_whole_lines(tmp_path):
    path, snapshot = earlier_round(tmp_path, READERS, ACTIVE)
    set_status(path, KNOWN, READERS[0], "unsubscribed")
    journal = journal_path(path)
    whole = journal.read_bytes()
    set_status(path, KNOWN, READERS[1], "unsubscribed")
    line = journal.read_bytes()[len(whole) :]
    journal.write_bytes(whole + line[:-5])  # the second change cut short (a crash mid-append)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    assert mailed(recipients) == READERS[1:]
    with journal.open("ab") as handle:
        handle.write(line[-5:])  # and now whole
    assert mailed(recipients) == READERS[2:]


def test_a_journal_that_cannot_be_looked_at_for_a_moment_keeps_what_it_said(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    set_status(path, KNOWN, READERS[0], "unsubscribed")
    assert mailed(recipients) == READERS[1:]
    journal = journal_path(path)
    saved = journal.read_bytes()
    journal.unlink()
    os.symlink(journal.name, journal)  # a link to itself: looking at it fails, and not as missing
    assert mailed(recipients) == READERS[1:]
    journal.unlink()
    journal.write_bytes(saved)  # back: still followed
    set_status(path, KNOWN, READERS[1], "unsubscribed")
    assert mailed(recipients) == READERS[2:]


def test_who_was_not_reached_counts_only_those_still_subscribed(tmp_path):
    path, snapshot = new_round(tmp_path)
    recipients = Recipients(path, KNOWN, set(), snapshot)
    assert unreached(recipients, set(READERS)) == 0
    assert unreached(recipients, set(READERS[2:])) == 2
    set_status(path, KNOWN, READERS[0], "unsubscribed")
    assert unreached(recipients, set(READERS[2:])) == 1
    write_subscribers(path, with_status(ACTIVE, READERS[1], "unsubscribed"))
    assert unreached(recipients, set(READERS[2:])) == 0
