"""The subscriber list's promise, one way of breaking it per test.

A change digest acknowledged is never lost and applied at most once; a hand edit
is never overwritten; a reader who is not active when their message is about to
go is not mailed (new round, resumed round, re-send), an erased one never again;
a malformed journal line is a one-line message naming file and line, never
folded; the BOM and line endings survive a rewrite; nothing is left beside the
list by a killed process; and a change costs reading the journal, not the list.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_journal import journaled_list, kill_fold_at, kill_when_marked, statuses
from test_list_during_send import at_messages
from test_webhooks import SECRET, post, signed

from conftest import KNOWN, NOW, SERVE_CONFIG, run_digest, smtp_config, write_subscribers
from digest.newsletter.catalog import load_issue
from digest.send.delivery import send_issue
from digest.subscribers import journal as journal_module
from digest.subscribers import rewrite
from digest.subscribers.changes import fold_journal, remove_subscriber, set_status, set_statuses
from digest.subscribers.journal import journal_path
from digest.subscribers.reading import read_subscribers
from servehelpers import serving

READERS = [f"reader{n}@example.com" for n in range(5)]


def leftovers(path):
    """Files beside the list other than the list and digest's own lasting companions."""
    lasting = {
        path.name,
        *(f".{path.name}.{end}" for end in ("journal", "index", "lock", "journal.lock", "erased")),
    }
    return sorted(p.name for p in path.parent.iterdir() if p.name not in lasting and p.name.startswith("."))


def mailing_site(site, smtp, extra=""):
    site.write_config(smtp_config(smtp.port, "concurrency = 1\nmax_attempts = 1\n" + extra))
    site.copy_examples()
    path = site.root / "subscribers.csv"
    write_subscribers(path, [(r, "", "", "active", "2026-01-01") for r in READERS])
    return path


def unsubscribe(path):
    set_status(path, KNOWN, READERS[0], "unsubscribed")  # the web's one-click unsubscribe


def bounce(path):
    set_statuses(path, KNOWN, {READERS[0]: "bounced"})  # the bounce reader


def erase(path):
    remove_subscriber(path, KNOWN, READERS[0], purge=True)  # digest subscribers remove --purge
    fold_journal(path, KNOWN)


def delete_by_hand(path):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith(READERS[0])), encoding="utf-8")


@pytest.mark.parametrize("leave", [unsubscribe, bounce, erase, delete_by_hand])
def test_a_resumed_round_does_not_mail_a_reader_who_left_since_it_began(site, smtp, leave):
    path = mailing_site(site, smtp)
    smtp.faults.data_replies = ["451 4.3.0 try again later"]  # the first message (reader0) is deferred
    issue = load_issue(site.config, "2026-11-01")
    first = send_issue(site.config, issue, NOW, progress=False)
    assert (first.sent, first.deferred) == (4, 1)
    leave(path)
    again = send_issue(site.config, issue, NOW, progress=False)  # the next `digest run` resumes the round
    assert again.sent == 0 and READERS[0] not in smtp.per_recipient()


def test_an_erasure_during_a_send_is_honoured_later_in_that_send(site, smtp, run_env):
    path = mailing_site(site, smtp)
    erased = READERS[-1]
    purge = ["subscribers", "remove", "--purge", erased, "--config", str(site.config_path)]
    done = []
    at_messages(smtp, {1: lambda: done.append(run_digest(purge, run_env))})
    report = send_issue(site.config, load_issue(site.config, "2026-11-01"), NOW, progress=False)
    assert done[0].returncode == 0, done[0].stderr
    assert erased not in smtp.per_recipient() and report.unsubscribed_during == 1
    assert erased not in path.read_text(encoding="utf-8")


def test_a_fold_killed_before_its_rename_then_a_hand_save_loses_no_change(tmp_path):
    path = journaled_list(tmp_path)  # a@ unsubscribed and c@ added, both journaled
    kill_fold_at(tmp_path, path, "mark_fold")
    path.write_text(path.read_text(encoding="utf-8") + "d@example.com,D,,active,\n", encoding="utf-8")
    expected = {
        "a@example.com": "unsubscribed",
        "b@example.com": "active",
        "c@example.com": "active",
        "d@example.com": "active",
    }
    assert statuses(path) == expected
    fold_journal(path, KNOWN)
    assert statuses(path) == expected and b"example.com" not in journal_path(path).read_bytes()
    assert "a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")
    assert leftovers(path) == []  # the killed fold's temporary file is gone too


def test_a_hand_save_while_the_fold_writes_the_new_list_is_kept(tmp_path, monkeypatch):
    path = journaled_list(tmp_path)
    hand = path.read_text(encoding="utf-8").replace("B,,active", "Bea,papers,active")
    real = rewrite._Writer.write

    def write_after_a_hand_save(self, handle):
        if path.read_text(encoding="utf-8") != hand:
            path.write_text(hand, encoding="utf-8")
        real(self, handle)

    monkeypatch.setattr(rewrite._Writer, "write", write_after_a_hand_save)
    fold_journal(path, KNOWN)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [
        "a@example.com,A,,unsubscribed,",
        "b@example.com,Bea,papers,active,",
        "c@example.com,,,active,2026-11-22",
    ]


def test_a_complaint_for_a_reader_on_an_unreadable_line_waits_for_the_fix(site, monkeypatch):
    monkeypatch.setenv("DIGEST_WEBHOOK_SECRET", SECRET)
    site.write_config(SERVE_CONFIG)
    path = site.root / "subscribers.csv"
    good = "email,name,sections,status,since\na@example.com,A,,active,\nb@example.com,B,,active,\n"
    path.write_text(good.replace("b@example.com,B", 'b@example.com,"B'), encoding="utf-8")
    with serving(site.config) as server:
        code, reply = post(
            server, "/webhooks/bounce", *signed({"address": "b@example.com", "kind": "complaint"})
        )
    assert code == 200 and "no change" not in reply
    fold_journal(path, KNOWN)  # the line is still broken: the change stays pending
    assert b"b@example.com" in journal_path(path).read_bytes()
    path.write_text(good, encoding="utf-8")  # the quote fixed by hand
    assert read_subscribers(path, KNOWN).find("b@example.com").status == "unsubscribed"
    fold_journal(path, KNOWN)
    assert "b@example.com,B,,unsubscribed," in path.read_text(encoding="utf-8")


def test_a_journal_line_of_the_wrong_shape_is_named_skipped_and_never_folded(site, run_env):
    path = site.root / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    lines = [
        {"seq": 1, "key": "a@example.com", "op": "update", "fields": {"status": "unsubscribed"}},
        {"seq": 2, "op": "update", "fields": {"status": "bounced"}},  # no key
        {"seq": 3, "key": "b@example.com", "op": "update", "fields": {"sections": "papers"}},  # not a list
    ]
    journal_path(path).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    listed = run_digest(["subscribers", "list", "--config", str(site.config_path)], run_env)
    assert (
        listed.returncode == 1 and "internal error" not in listed.stderr and "Traceback" not in listed.stderr
    )
    named = [line for line in listed.stderr.splitlines() if f"{journal_path(path)}:" in line]
    assert len(named) == 2 and all("not a change" in line for line in named)
    text = path.read_text(encoding="utf-8")
    assert (
        "a@example.com,A,,unsubscribed," in text and "b@example.com,B,,active," in text
    )  # the good one folded
    assert "a;e;p;r;s" not in text


def test_the_fold_keeps_the_byte_order_mark_and_line_endings_of_a_spreadsheet_save(tmp_path):
    path = tmp_path / "subscribers.csv"
    rows = ["email,name,sections,status,since", "a@example.com,Ä,,active,", "b@example.com,B,news,,", ""]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8"))
    set_status(path, KNOWN, "b@example.com", "unsubscribed")
    fold_journal(path, KNOWN)
    changed = [*rows[:2], "b@example.com,B,news,unsubscribed,", ""]
    assert path.read_bytes() == b"\xef\xbb\xbf" + "\r\n".join(changed).encode("utf-8")


INDEX_CHILD = """
import sys, time
from pathlib import Path
from digest.subscribers import index
from digest.subscribers.changes import find_subscriber
path, marker = Path(sys.argv[1]), Path(sys.argv[2])
def stop(self, signature):
    marker.write_text("here")
    time.sleep(600)
index.IndexBuilder.finish = stop
find_subscriber(path, {"news", "papers", "projects", "blogs", "apps"}, "a@example.com")
"""


def test_an_index_rebuild_killed_leaves_nothing_behind_after_the_next_locked_operation(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    marker = tmp_path / "marker"
    kill_when_marked(subprocess.Popen([sys.executable, "-c", INDEX_CHILD, str(path), str(marker)]), marker)
    assert leftovers(path)  # the half-built index
    set_status(path, KNOWN, "a@example.com", "unsubscribed")  # rebuilds the index under the lock
    assert leftovers(path) == []


def test_a_change_during_a_send_reads_the_journal_not_the_list(tmp_path, monkeypatch):
    from digest.send import recipients as module

    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [(r, "", "", "active", "") for r in READERS])
    reads = []
    real = module.read_statuses
    monkeypatch.setattr(module, "read_statuses", lambda *args: reads.append(1) or real(*args))
    module._FILE_STATUSES.clear()
    check = module.Recipients(path, KNOWN, set(), tmp_path / "snapshot")
    by_key = {r: read_subscribers(path, KNOWN).find(r) for r in READERS}
    assert check.still_active(by_key[READERS[0]]) and len(reads) == 1  # the round's start reads the list
    for reader in READERS[1:]:
        set_status(path, KNOWN, reader, "unsubscribed")
        assert not check.still_active(by_key[reader])
    assert check.still_active(by_key[READERS[0]]) and len(reads) == 1


def test_a_batch_of_status_changes_parses_the_journal_once(tmp_path, monkeypatch):
    path = tmp_path / "subscribers.csv"
    readers = [f"r{n}@example.com" for n in range(400)]
    write_subscribers(path, [(r, "", "", "active", "") for r in readers])
    set_statuses(path, KNOWN, dict.fromkeys(readers[:300], "bounced"))  # 300 lines in the journal
    parsed = []
    real = json.loads
    monkeypatch.setattr(journal_module.json, "loads", lambda *a, **k: parsed.append(1) or real(*a, **k))
    set_statuses(path, KNOWN, dict.fromkeys(readers[300:], "unsubscribed"))  # 100 more
    assert len(parsed) < 300 + 3 * 100
    assert read_subscribers(path, KNOWN).find(readers[-1]).status == "unsubscribed"


def test_a_new_round_of_another_issue_between_does_not_hide_who_left(site, smtp):
    path = mailing_site(site, smtp)
    smtp.faults.data_replies = ["451 4.3.0 try again later"]
    first = load_issue(site.config, "2026-11-01")
    assert send_issue(site.config, first, NOW, progress=False).deferred == 1  # reader0 waits
    unsubscribe(path)
    other = send_issue(site.config, load_issue(site.config, "2026-10-15"), NOW, progress=False)
    assert other.sent == 4  # a new round of another issue, read from the list as it is now
    again = send_issue(site.config, first, NOW, progress=False)  # the same process resumes the first
    assert again.sent == 0 and smtp.per_recipient()[READERS[0]] == 0


def test_a_change_kept_for_an_unreadable_line_survives_a_fold_cut_short_after_its_rename(tmp_path):
    path = tmp_path / "subscribers.csv"
    path.write_text(
        "email,name,sections,status,since\na@example.com,A,,active,\nb@example.com,B,,zombie,\n",
        encoding="utf-8",
    )
    set_statuses(path, KNOWN, {"b@example.com": "bounced"})  # b's line cannot be read: kept pending
    set_status(path, KNOWN, "a@example.com", "unsubscribed")
    kill_fold_at(tmp_path, path, "settle_journal")  # the new list is in place, the header still there
    set_status(path, KNOWN, "a@example.com", "active")  # a new change after the header
    assert read_subscribers(path, KNOWN).find("a@example.com").status == "active"
    fold_journal(path, KNOWN)
    assert read_subscribers(path, KNOWN).find("a@example.com").status == "active"
    path.write_text(path.read_text(encoding="utf-8").replace("zombie", "active"), encoding="utf-8")
    assert read_subscribers(path, KNOWN).find("b@example.com").status == "bounced"


def test_a_torn_last_journal_line_is_never_applied_and_the_next_change_starts_a_line(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    journal_path(path).write_bytes(b'{"fields": {"status": "bounced"}, "key": "a@example.com", "op": "upd')
    assert read_subscribers(path, KNOWN).find("a@example.com").status == "active"
    assert read_subscribers(path, KNOWN).problems == ()  # cut short by a crash: never acknowledged
    set_status(path, KNOWN, "a@example.com", "unsubscribed")
    listing = read_subscribers(path, KNOWN)
    assert listing.find("a@example.com").status == "unsubscribed" and listing.problems == ()
    fold_journal(path, KNOWN)
    assert "a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")


def test_a_reader_erased_then_added_back_by_hand_is_mailed_by_the_next_round(site, smtp):
    path = mailing_site(site, smtp)
    erase(path)  # a digest of the address is kept: a round that began before must not mail it
    path.write_text(
        path.read_text(encoding="utf-8") + f"{READERS[0]},,,active,2026-12-01\n", encoding="utf-8"
    )
    report = send_issue(site.config, load_issue(site.config, "2026-11-01"), NOW, progress=False)
    assert report.sent == 5 and smtp.per_recipient()[READERS[0]] == 1


def test_a_fold_leaves_the_journal_empty(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    set_status(path, KNOWN, "a@example.com", "unsubscribed")
    assert journal_path(path).read_bytes()
    assert fold_journal(path, KNOWN)
    assert journal_path(path).read_bytes() == b""  # nothing left to apply twice, nothing to grow
    assert "a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")


def test_a_journal_header_naming_a_path_is_refused_and_nothing_is_removed(tmp_path):
    """A fold's header names its temporary file; one naming a path elsewhere is never trusted."""
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    precious = tmp_path / "elsewhere" / "precious.txt"
    precious.parent.mkdir()
    precious.write_text("keep me", encoding="utf-8")
    header = {"folded": 1, "from": [1, 2, 3], "keep": [], "tmp": "../elsewhere/precious.txt"}
    change = {"seq": 1, "key": "a@example.com", "op": "update", "fields": {"status": "bounced"}}
    journal_path(path).write_text(json.dumps(header) + "\n" + json.dumps(change) + "\n", encoding="utf-8")
    read = read_subscribers(path, KNOWN)
    assert any("not a change" in problem.message for problem in read.problems)
    fold_journal(path, KNOWN)
    assert precious.read_text(encoding="utf-8") == "keep me"
