"""The change journal: changes acknowledged only once fsynced, seen by every reader, folded safely;
a record swallowed by a quote left open is reported and never changed in the dark; export is inert."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
from test_subscribers import TODAY

from conftest import KNOWN, run_digest, write_subscribers
from digest.errors import SubscriberError
from digest.subscribers.changes import (
    add_subscriber,
    find_subscriber,
    fold_journal,
    remove_subscriber,
    set_sections,
    set_status,
)
from digest.subscribers.journal import SubscriberUnavailable, erased_path, journal_path, read_journal
from digest.subscribers.reading import iter_subscribers, read_subscribers, scan_subscribers

OPEN_QUOTE = (
    "email,name,sections,status,since\n"
    "a@example.com,A,,active,\n"
    'b@example.com,"B open,,active,\n'
    "c@example.com,C,,active,\n"
    "d@example.com,D,,unsubscribed,\n"
)


def cli(site, env, *args):
    return run_digest(["subscribers", *args, "--config", str(site.config_path)], env)


def test_a_quote_left_open_reports_every_swallowed_line_by_its_number(site, run_env):
    path = site.root / "subscribers.csv"
    path.write_text(OPEN_QUOTE, encoding="utf-8")
    problems = {p.line: p.message for p in read_subscribers(path, KNOWN).problems}
    assert sorted(problems) == [3, 4, 5]
    assert "c@example.com is inside the record that starts on line 3" in problems[4]
    assert "d@example.com is inside the record that starts on line 3" in problems[5]
    listed = cli(site, run_env, "list")
    assert listed.returncode == 1
    for line in (3, 4, 5):
        assert f"{path}:{line}: " in listed.stderr
    assert "Traceback" not in listed.stderr


def test_a_change_to_a_swallowed_address_fails_visibly_and_changes_nothing(site, run_env):
    path = site.root / "subscribers.csv"
    path.write_text(OPEN_QUOTE, encoding="utf-8")
    with pytest.raises(SubscriberUnavailable) as caught:  # the web answers 503 "try again"
        set_status(path, KNOWN, "C@example.com", "unsubscribed")
    assert caught.value.line == 4 and isinstance(caught.value, SubscriberError)
    with pytest.raises(SubscriberUnavailable):
        set_sections(path, KNOWN, "d@example.com", frozenset({"papers"}))
    added = cli(site, run_env, "add", "c@example.com")
    removed = cli(site, run_env, "remove", "d@example.com")
    for result in (added, removed):
        assert result.returncode == 1 and "line that cannot be read" in result.stderr, result.stderr
        assert "added" not in result.stdout and "unsubscribed" not in result.stdout
    assert path.read_text(encoding="utf-8") == OPEN_QUOTE
    assert not journal_path(path).exists() or b"example.com" not in journal_path(path).read_bytes()

    path.write_text(OPEN_QUOTE.replace('"B open', "B open"), encoding="utf-8")  # the editor fixes the quote
    assert find_subscriber(path, KNOWN, "c@example.com").active
    assert set_status(path, KNOWN, "c@example.com", "unsubscribed").status == "unsubscribed"
    assert find_subscriber(path, KNOWN, "c@example.com").status == "unsubscribed"


def test_a_status_change_while_the_list_is_missing_is_refused(tmp_path):
    with pytest.raises(SubscriberUnavailable, match="missing"):
        set_status(tmp_path / "subscribers.csv", KNOWN, "a@example.com", "unsubscribed")
    assert not journal_path(tmp_path / "subscribers.csv").exists()


def test_an_unsubscribe_is_journaled_not_rewritten_and_every_reader_applies_it(site, run_env):
    path = site.root / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    before, inode = path.read_bytes(), path.stat().st_ino
    assert set_status(path, KNOWN, "a@example.com", "unsubscribed").status == "unsubscribed"
    add_subscriber(path, KNOWN, "new@example.com", name="新", today=TODAY)
    assert (path.read_bytes(), path.stat().st_ino) == (before, inode)  # the CSV is not rewritten
    assert journal_path(path).read_bytes().count(b"\n") == 2  # one line per change, on disk

    statuses = {s.email: s.status for s in iter_subscribers(path, KNOWN)}
    assert statuses == {
        "a@example.com": "unsubscribed",
        "b@example.com": "active",
        "new@example.com": "active",
    }
    assert {s.email: s.status for s in read_subscribers(path, KNOWN).subscribers} == statuses
    assert {s.email: s.status for s, _ in scan_subscribers(path, KNOWN) if s} == statuses
    assert find_subscriber(path, KNOWN, "A@example.com").status == "unsubscribed"
    assert find_subscriber(path, KNOWN, "new@example.com").name == "新"

    listed = cli(site, run_env, "list", "--status", "unsubscribed")  # a subscribers command folds it in
    assert listed.returncode == 0 and listed.stdout.startswith("a@example.com\tA\tall\tunsubscribed")
    assert path.read_text(encoding="utf-8").splitlines()[1:] == [
        "a@example.com,A,,unsubscribed,",
        "b@example.com,B,,active,",
        "new@example.com,新,,active,2026-11-22",
    ]
    assert b"example.com" not in journal_path(path).read_bytes()


CHILD = """
import sys, time
from pathlib import Path
import digest.subscribers.rewrite as rewrite
from digest.subscribers.changes import fold_journal
path, marker, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real = getattr(rewrite, where)
def stop(*args, **kwargs):
    if where == "mark_fold":
        real(*args, **kwargs)
    marker.write_text("here")
    time.sleep(600)
setattr(rewrite, where, stop)
fold_journal(path, {"news", "papers", "projects", "blogs", "apps"})
"""


def kill_fold_at(tmp_path, path, where):
    """Run a fold in another process and SIGKILL it at ``where``."""
    marker = tmp_path / "marker"
    kill_when_marked(subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker), where]), marker)


def kill_when_marked(child: subprocess.Popen, marker) -> None:
    """SIGKILL ``child`` once it has written ``marker`` (it then waits to be killed)."""
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    child.kill()
    child.wait()


def journaled_list(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    set_status(path, KNOWN, "a@example.com", "unsubscribed")
    add_subscriber(path, KNOWN, "c@example.com", today=TODAY)
    return path


def statuses(path):
    return {s.email: s.status for s in read_subscribers(path, KNOWN).subscribers}


def test_a_fold_killed_after_the_rename_neither_loses_nor_applies_a_change_twice(tmp_path):
    path = journaled_list(tmp_path)
    kill_fold_at(tmp_path, path, "settle_journal")  # the new list is in place, the journal not yet emptied
    text = path.read_text(encoding="utf-8")
    assert "a@example.com,A,,unsubscribed," in text and text.count("c@example.com") == 1
    assert statuses(path) == {
        "a@example.com": "unsubscribed",
        "b@example.com": "active",
        "c@example.com": "active",
    }
    path.write_text(text.replace("A,,unsubscribed", "A,,active"), encoding="utf-8")  # a re-subscribed by hand
    assert statuses(path)["a@example.com"] == "active"  # the journal's old unsubscribe is not applied again
    leftover = path.with_name(f".{path.name}.index.k1ll3d00.tmp")  # of an index rebuild killed meanwhile
    leftover.write_bytes(b"half an index")
    fold_journal(path, KNOWN)  # sweeps the leftover; the fold that did rename keeps its changes folded
    assert not leftover.exists()
    assert statuses(path)["a@example.com"] == "active"
    assert path.read_text(encoding="utf-8").count("c@example.com") == 1
    assert b"example.com" not in journal_path(path).read_bytes()


def test_a_fold_killed_before_the_rename_loses_nothing(tmp_path):
    path = journaled_list(tmp_path)
    before = path.read_bytes()
    kill_fold_at(tmp_path, path, "mark_fold")  # the journal says what the fold holds; the rename never came
    assert path.read_bytes() == before
    expected = {"a@example.com": "unsubscribed", "b@example.com": "active", "c@example.com": "active"}
    assert statuses(path) == expected
    fold_journal(path, KNOWN)
    assert statuses(path) == expected and path.read_text(encoding="utf-8").count("c@example.com") == 1
    assert "a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")


def test_a_fold_creating_the_list_killed_before_the_rename_loses_nothing(tmp_path):
    path = tmp_path / "subscribers.csv"
    add_subscriber(path, KNOWN, "first@example.com", today=TODAY)  # there is no list yet
    kill_fold_at(tmp_path, path, "mark_fold")
    assert not path.exists()
    assert statuses(path) == {"first@example.com": "active"}
    fold_journal(path, KNOWN)
    assert path.read_text(encoding="utf-8").splitlines()[1:] == ["first@example.com,,,active,2026-11-22"]


def test_export_neutralises_cells_a_spreadsheet_would_run(site, run_env):
    path = site.root / "subscribers.csv"
    rows = [
        ("=1+1@example.com", '=HYPERLINK("http://x")', "", "active", ""),
        ("plus@example.com", "+cmd", "", "active", ""),
        ("minus@example.com", "-2+3", "", "active", ""),
        ("at@example.com", "@SUM(A1)", "", "active", ""),
        ("plain@example.com", "Li Lei", "", "active", ""),
    ]
    write_subscribers(path, [(r[0], f'"{r[1]}"' if '"' in r[1] else r[1], *r[2:]) for r in rows])
    path.write_text(
        path.read_text(encoding="utf-8").replace('"=HYPERLINK("http://x")"', '"=HYPERLINK(""http://x"")"')
    )
    exported = cli(site, run_env, "export")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert lines[1] == '\'=1+1@example.com,"\'=HYPERLINK(""http://x"")",,active,'
    assert lines[2:] == [
        "plus@example.com,'+cmd,,active,",
        "minus@example.com,'-2+3,,active,",
        "at@example.com,'@SUM(A1),,active,",
        "plain@example.com,Li Lei,,active,",
    ]


def test_a_one_click_unsubscribe_for_a_swallowed_address_says_try_again(site, server):
    from servehelpers import one_click, status_of, token

    path = site.root / "subscribers.csv"
    path.write_text(
        'email,name,sections,status,since\na@example.com,"甲 open,,active,\nb@example.com,乙,,active,\n',
        encoding="utf-8",
    )
    code, page, _ = one_click(server, f"/unsubscribe?token={token(site, 'b@example.com', 'unsubscribe')}")
    assert code == 503 and "已退订" not in page  # never answered as done
    path.write_text(path.read_text(encoding="utf-8").replace('"甲 open', "甲"), encoding="utf-8")
    assert status_of(site, "b@example.com") == "active"  # nothing was changed in the dark
    code, _, _ = one_click(server, f"/unsubscribe?token={token(site, 'b@example.com', 'unsubscribe')}")
    assert code == 200 and status_of(site, "b@example.com") == "unsubscribed"


def test_an_address_added_after_a_quote_left_open_to_the_end_is_refused_or_kept_pending(site, run_env):
    path = site.root / "subscribers.csv"
    path.write_text(OPEN_QUOTE, encoding="utf-8")
    added = cli(site, run_env, "add", "new@example.com")  # its line would be swallowed too
    assert added.returncode == 1 and "quote left open" in added.stderr and "added" not in added.stdout
    assert path.read_text(encoding="utf-8") == OPEN_QUOTE
    assert find_subscriber(path, KNOWN, "new@example.com") is None

    fixed = OPEN_QUOTE.replace('"B open', "B open")
    path.write_text(fixed, encoding="utf-8")
    add_subscriber(path, KNOWN, "late@example.com", today=TODAY)  # journaled while the list is fine
    path.write_text(OPEN_QUOTE, encoding="utf-8")  # then the quote is broken again by hand
    fold_journal(path, KNOWN)
    assert path.read_text(encoding="utf-8") == OPEN_QUOTE  # not appended where it would be swallowed
    assert find_subscriber(path, KNOWN, "late@example.com").active  # but kept, and read
    path.write_text(fixed, encoding="utf-8")
    fold_journal(path, KNOWN)
    assert path.read_text(encoding="utf-8").splitlines()[-1] == "late@example.com,,,active,2026-11-22"
    assert b"late@example.com" not in journal_path(path).read_bytes()


def test_a_hand_edit_after_a_change_is_seen_by_the_next_lookup(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    set_status(path, KNOWN, "a@example.com", "unsubscribed")  # builds the index for this version
    with path.open("a", encoding="utf-8") as handle:
        handle.write("hand@example.com,手写,papers,active,\n")  # an editor adds a line
    assert find_subscriber(path, KNOWN, "hand@example.com").sections == {"papers"}
    assert set_sections(path, KNOWN, "hand@example.com", frozenset()).sections == frozenset()
    assert find_subscriber(path, KNOWN, "a@example.com").status == "unsubscribed"
    assert find_subscriber(path, KNOWN, "hand@example.com").sections == frozenset()


def test_digest_serve_builds_the_lookup_index_before_anyone_waits_for_it(site):
    """A change after a hand edit read the whole list first (122 s at 1,000,000 lines): serve warms it."""
    from conftest import SERVE_CONFIG
    from digest.subscribers.index import index_path
    from servehelpers import serving

    site.write_config(SERVE_CONFIG)
    path = site.root / "subscribers.csv"
    write_subscribers(path, [(f"r{n}@example.com", "", "", "active", "") for n in range(500)])
    assert not index_path(path).exists()
    with serving(site.config):
        deadline = time.monotonic() + 30
        while not index_path(path).exists():  # built by the server's own thread, no request made
            assert time.monotonic() < deadline, "digest serve did not build the index"
            time.sleep(0.05)


def test_after_a_fold_an_address_listed_twice_is_its_first_record(tmp_path):
    """The first record of an address is the one that counts, in the lookup index a fold rebuilds too."""
    path = tmp_path / "subscribers.csv"
    rows = [
        ("a@example.com", "First", "papers", "active", ""),
        ("b@example.com", "B", "", "active", ""),
        ("A@Example.com", "Second", "", "unsubscribed", ""),
    ]
    write_subscribers(path, rows)
    set_status(path, KNOWN, "b@example.com", "unsubscribed")  # a change, so the fold rewrites the list
    assert fold_journal(path, KNOWN)
    found = find_subscriber(path, KNOWN, "a@example.com")
    assert (found.name, found.status, found.sections) == ("First", "active", {"papers"})
    assert path.read_text(encoding="utf-8").count("xample.com") == 3  # both records kept as they were


A = {"seq": 1, "key": "a@example.com", "op": "update"}
WRONG_SHAPES = [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    ({**A, "seq": 0, "fields": {}}, "'seq' must be a positive whole number"),
    ({**A, "seq": True, "fields": {}}, "'seq' must be a positive whole number"),
    ({**A, "key": " ", "fields": {}}, "'key' must be an address"),
    ({**A, "key": "a@example.com\n", "fields": {}}, "'key' must be an address"),
    ({**A, "op": "drop", "fields": {}}, "'op' must be one of add, update, erase"),
    ({**A, "fields": []}, "'fields' must be an object"),
    ({**A, "fields": {"colour": "red"}}, "unknown field 'colour'"),
    ({**A, "op": "erase", "fields": {"status": "bounced"}}, "an erase carries no fields"),
    ({**A, "op": "add", "fields": {"name": "A"}}, "an add needs an email"),
    ({**A, "fields": {"name": 7}}, "'name' must be a string"),
    ({**A, "fields": {"sections": "papers"}}, "'sections' must be a list of section slugs"),
    ({**A, "fields": {"sections": ["two words"]}}, "'sections' must be a list of section slugs"),
    ({**A, "fields": {"status": "paused"}}, "status 'paused' must be one of active, unsubscribed, bounced"),
    ({**A, "fields": {"since": "2026-13-01"}}, "month must be in 1..12"),
    ({**A, "fields": {"email": "b@example.com"}}, "'email' is not the address of 'key'"),
    (
        {**A, "fields": {"email": "no-at-sign"}},
        "invalid address 'no-at-sign': An email address must have an @-sign.",
    ),
    ({"folded": 0, "from": [1, "2"]}, "'from' must be a list signature"),  # a fold header, on line 1
    ({"folded": 0, "tmp": "../subscribers.csv"}, "'tmp' must be a file name"),
]


@pytest.mark.parametrize(("line", "reason"), WRONG_SHAPES)
def test_a_journal_line_of_the_wrong_shape_is_named_with_why_and_never_applied(tmp_path, line, reason):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    raw = line if isinstance(line, bytes) else json.dumps(line).encode()
    good = json.dumps({**A, "seq": 2, "fields": {"status": "unsubscribed"}}).encode()
    journal_path(path).write_bytes(raw + b"\n" + good + b"\n")
    listing = read_subscribers(path, KNOWN)
    assert [(p.line, p.message) for p in listing.problems] == [
        (1, f"not a change ({reason}); this line is never applied")
    ]
    assert listing.find("a@example.com").status == "unsubscribed"  # the good line after it still is
    fold_journal(path, KNOWN)
    assert "a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")
    assert journal_path(path).read_bytes() == raw + b"\n"  # kept for a person to see, still named
    assert [p.line for p in read_subscribers(path, KNOWN).problems] == [1]


def test_blank_lines_and_a_torn_last_line_of_the_journal_are_no_changes(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    good = json.dumps({**A, "fields": {"status": "unsubscribed"}}).encode()
    torn = json.dumps({**A, "seq": 2, "fields": {"status": "bounced"}}).encode()[:-3]  # a crash mid-append
    journal_path(path).write_bytes(good + b"\n\n  \n" + torn)
    assert find_subscriber(path, KNOWN, "a@example.com").status == "unsubscribed"
    listing = read_subscribers(path, KNOWN)
    assert listing.find("a@example.com").status == "unsubscribed" and listing.problems == ()


def test_an_update_of_an_address_not_on_the_list_adds_nobody(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    fields = {"email": "x@example.com", "status": "active"}
    update = {"seq": 1, "key": "x@example.com", "op": "update", "fields": fields}  # update: only if listed
    journal_path(path).write_bytes(json.dumps(update).encode() + b"\n")
    listing = read_subscribers(path, KNOWN)
    assert [s.email for s in listing.subscribers] == ["a@example.com"] and listing.problems == ()


def test_a_journal_change_with_a_since_that_carries_a_time_is_applied(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(path, [("a@example.com", "A", "", "active", "")])
    since = "2026-01-05T08:30:00+00:00"  # as other tools write it; the list itself accepts it too
    journal_path(path).write_bytes(json.dumps({**A, "fields": {"since": since}}).encode() + b"\n")
    listing = read_subscribers(path, KNOWN)
    assert listing.problems == () and listing.find("a@example.com").since == since


def test_changes_after_a_fold_cut_short_are_numbered_above_what_it_folded_and_kept(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    # a fold renamed its list into place (its temporary file is gone) and was killed before it
    # dropped the three changes that list holds: the header says so
    header = {"folded": 3, "from": None, "keep": [], "tmp": ".subscribers.csv.gone.tmp"}
    journal_path(path).write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n")
    set_status(path, KNOWN, "a@example.com", "unsubscribed")
    set_status(path, KNOWN, "b@example.com", "bounced")
    assert [c.seq for c in read_journal(path).changes] == [4, 5]
    assert [(s.email, s.status) for s in read_subscribers(path, KNOWN).subscribers] == [
        ("a@example.com", "unsubscribed"),
        ("b@example.com", "bounced"),
    ]
    fold_journal(path, KNOWN)
    assert ("a@example.com,A,,unsubscribed," in path.read_text(encoding="utf-8")) and read_journal(
        path
    ).changes == ()


def test_the_erased_file_names_an_address_by_its_128_bit_blake2b_digest_only(tmp_path):
    path = tmp_path / "subscribers.csv"
    write_subscribers(
        path, [("a@example.com", "A", "", "active", ""), ("b@example.com", "B", "", "active", "")]
    )
    remove_subscriber(path, KNOWN, "a@example.com", purge=True)
    fold_journal(path, KNOWN)
    # the file's format: digests written by earlier versions of digest must still match
    expected = hashlib.blake2b(b"a@example.com", digest_size=16).hexdigest()
    assert erased_path(path).read_text(encoding="ascii") == expected + "\n"
    assert "a@example.com" not in path.read_text(encoding="utf-8")
