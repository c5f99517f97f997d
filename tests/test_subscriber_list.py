"""The subscriber list's rules as a reader and an editor meet them: who is on it, how, and its file."""

from __future__ import annotations

import datetime as dt
import os
import resource
import signal
import stat

import pytest

from conftest import KNOWN, run_digest
from digest.errors import DigestError, SubscriberError
from digest.subscribers import rewrite
from digest.subscribers.changes import (
    add_subscriber,
    find_changeable,
    find_subscriber,
    fold_journal,
    import_subscribers,
    remove_subscriber,
    set_sections,
    set_status,
    set_statuses,
)
from digest.subscribers.index import index_path, lookup_index
from digest.subscribers.journal import SubscriberUnavailable, journal_path, read_journal
from digest.subscribers.model import Subscriber, address_key, check_email, export_csv, parse_sections
from digest.subscribers.reading import iter_subscribers, list_signature, read_subscribers, scan_subscribers

TODAY = dt.date(2026, 11, 22)
HEADER = "email,name,sections,status,since\n"
STATUSES = {
    "active": ["a@example.com", "quiet@example.com"],
    "unsubscribed": ["left@example.com"],
    "bounced": ["gone@example.com"],
}
MIXED = (
    HEADER
    + "a@example.com,甲,papers,active,2026-01-01\n"
    + "left@example.com,乙,,unsubscribed,2025-05-05\n"
    + "gone@example.com,,,bounced,\n"
    + "quiet@example.com,,,,\n"
)


def write(tmp_path, text=MIXED, name="subscribers.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def folded(path):
    """The list's text once its journal is folded in, as the next send or `digest subscribers` leaves it."""
    fold_journal(path, KNOWN)
    assert read_journal(path).changes == ()  # every change is in the list now, none left pending
    return path.read_text(encoding="utf-8")


# -- the file itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("chosen", [0o600, 0o640, 0o664])
def test_a_rewritten_list_keeps_its_file_mode(tmp_path, chosen):
    path = write(tmp_path)
    path.chmod(chosen)
    set_status(path, KNOWN, "a@example.com", "bounced")
    assert "bounced" in folded(path).splitlines()[1]
    assert mode(path) == chosen
    add_subscriber(path, KNOWN, "new@example.com", today=TODAY)
    remove_subscriber(path, KNOWN, "left@example.com", purge=True)
    assert "new@example.com" in folded(path)
    assert mode(path) == chosen
    assert [s.email for s in read_subscribers(path, KNOWN).subscribers] == [
        "a@example.com",
        "gone@example.com",
        "quiet@example.com",
        "new@example.com",
    ]


def test_a_list_created_by_digest_is_readable_by_its_owner_and_group_only(tmp_path):
    path = tmp_path / "subscribers.csv"
    add_subscriber(path, KNOWN, "first@example.com", today=TODAY)
    assert mode(journal_path(path)) == 0o640  # the change waiting to be folded names the address too
    assert folded(path) == HEADER + "first@example.com,,,active,2026-11-22\n"
    assert mode(path) == 0o640
    assert mode(index_path(path)) == 0o640  # and the index of its addresses


def test_a_change_that_changes_nothing_does_not_rewrite_the_file(tmp_path):
    path = write(tmp_path)
    before = os.stat(path)
    assert set_status(path, KNOWN, "gone@example.com", "bounced").status == "bounced"
    assert set_statuses(path, KNOWN, {"a@example.com": "active", "nobody@example.com": "bounced"}) == []
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_list_that_keeps_changing_under_digest_is_left_alone_with_an_error(tmp_path, monkeypatch):
    path = write(tmp_path)
    real = rewrite.rewritten_list

    def someone_saves_every_time(*args, **kwargs):
        result = real(*args, **kwargs)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n")
        return result

    set_status(path, KNOWN, "a@example.com", "bounced")
    monkeypatch.setattr(rewrite, "rewritten_list", someone_saves_every_time)
    with pytest.raises(SubscriberError, match="keeps changing"):
        fold_journal(path, KNOWN)
    # The list is as the editor left it (their five saves), and the change still waits in the journal.
    assert path.read_text(encoding="utf-8") == MIXED + "\n" * rewrite.REWRITE_ATTEMPTS
    assert [c.fields for c in read_journal(path).changes] == [{"status": "bounced"}]
    assert read_subscribers(path, KNOWN).find("a@example.com").status == "bounced"


# -- reading -----------------------------------------------------------------------------------


def test_statuses_are_read_as_written_and_empty_means_active(tmp_path):
    path = write(tmp_path, HEADER + "a@example.com,,,Active,\nb@example.com,,,,\nc@example.com,,,BOUNCED,\n")
    listing = read_subscribers(path, KNOWN)
    assert [(s.email, s.status, s.active) for s in listing.subscribers] == [
        ("a@example.com", "active", True),
        ("b@example.com", "active", True),
        ("c@example.com", "bounced", False),
    ]
    assert listing.problems == ()


def test_a_line_that_cannot_be_read_is_not_replaced_by_a_pending_addition_of_its_address(tmp_path):
    path = write(tmp_path)
    add_subscriber(path, KNOWN, "new@example.com", today=TODAY)  # pending in the journal
    with path.open("a", encoding="utf-8") as handle:
        handle.write("new@example.com,,,maybe,\n")  # then a line for it typed by hand, with a bad status
    listing = read_subscribers(path, KNOWN)
    assert listing.find("new@example.com") is None  # unreadable: fixed first, never mailed meanwhile
    assert [p.line for p in listing.problems] == [6]


def test_the_first_change_after_a_hand_edit_sweeps_what_a_killed_rewrite_left(tmp_path):
    path = write(tmp_path)
    set_status(path, KNOWN, "a@example.com", "unsubscribed")  # the index is built
    leftover = path.with_name(f".{path.name}.k1ll3d00.tmp")  # a rewrite killed before its rename
    leftover.write_text(MIXED, encoding="utf-8")
    write(tmp_path, MIXED + "hand@example.com,,,,\n")  # a hand edit: the index must be built again
    assert set_status(path, KNOWN, "hand@example.com", "unsubscribed") is not None
    assert not leftover.exists()
    assert read_subscribers(path, KNOWN).find("hand@example.com").status == "unsubscribed"


def test_a_status_change_for_an_address_on_an_unreadable_line_waits_for_the_fix(tmp_path):
    path = write(tmp_path, MIXED + "odd@example.com,,nosuchsection,active,\n")
    assert find_changeable(path, KNOWN, "odd@example.com").status == "active"  # a stand-in: line 6
    changed = set_statuses(path, KNOWN, {"odd@example.com": "bounced"})
    assert [(s.email, s.status, s.line) for s in changed] == [("odd@example.com", "bounced", 6)]
    assert find_changeable(path, KNOWN, "odd@example.com").status == "bounced"
    set_statuses(path, KNOWN, {"odd@example.com": "bounced"})  # the same again: journaled once
    assert len(read_journal(path).changes) == 1
    set_statuses(path, KNOWN, {"odd@example.com": "active"})
    set_statuses(path, KNOWN, {"odd@example.com": "bounced"})  # bounced again after the last change
    assert [c.fields["status"] for c in read_journal(path).changes] == ["bounced", "active", "bounced"]
    write(tmp_path, MIXED + "odd@example.com,,,active,\n")  # the line fixed by hand
    assert read_subscribers(path, KNOWN).find("odd@example.com").status == "bounced"


def test_an_index_that_cannot_be_put_in_place_is_one_clear_error_and_nothing_changes(tmp_path):
    path = write(tmp_path)
    index_path(path).mkdir()  # something else has the index's name
    with pytest.raises(SubscriberError, match=r"cannot write the list's index: Is a directory$"):
        set_status(path, KNOWN, "a@example.com", "unsubscribed")
    assert path.read_text(encoding="utf-8") == MIXED and not journal_path(path).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".subscribers.csv.index",
        ".subscribers.csv.lock",
        path.name,
    ]


def test_building_the_index_again_leaves_no_file_open(tmp_path):
    path = write(tmp_path)
    set_status(path, KNOWN, "a@example.com", "unsubscribed")  # builds the index once
    before = len(os.listdir("/proc/self/fd"))
    for n in range(3):  # a long-running `digest serve` rebuilds it after every hand edit
        write(tmp_path, MIXED + f"hand{n}@example.com,,,,\n")
        set_status(path, KNOWN, f"hand{n}@example.com", "unsubscribed")
    assert len(os.listdir("/proc/self/fd")) == before


def test_each_bad_field_is_named_with_its_line(tmp_path):
    long_name = "名" * 101
    path = write(
        tmp_path,
        HEADER
        + "ok@example.com,,papers;blogs,,2026-01-01T08:00\n"
        + f"long@example.com,{long_name},,,\n"
        + "max@example.com," + "名" * 100 + ",,,\n"
        + "tab@example.com,a\tb,,,\n"
        + "since@example.com,,,,2026-13-01\n"
        + ",,,,\n"
        + "cols@example.com,,,active,\n"
        + "many@example.com,,,active,,x,y\n"
        + "space@example.com,Li Lei,,,\n"
        + "SPACE@example.com,李雷,,,\n"
        + "paused@example.com,,,paused,\n"
        + 'quote@example.com,"Li" Lei,,,\n',
    )  # fmt: skip
    listing = read_subscribers(path, KNOWN)
    assert [s.email for s in listing.subscribers] == [
        "ok@example.com",
        "max@example.com",
        "cols@example.com",
        "space@example.com",
    ]
    assert listing.subscribers[3].name == "Li Lei"
    assert listing.subscribers[0].sections == {"papers", "blogs"}
    assert listing.subscribers[0].wants() == {"papers", "blogs"}
    assert listing.subscribers[2].wants() is None  # no sections: every one
    assert [(p.line, p.message) for p in listing.problems] == [
        (3, "the name is longer than 100 characters"),
        (5, "the name contains a line break or control character"),
        (6, "since '2026-13-01' is not a date (YYYY-MM-DD)"),
        (9, "7 columns, but the header has 5"),
        (11, "SPACE@example.com is listed twice; this line is skipped"),
        (12, "status 'paused' must be one of active, unsubscribed, bounced"),
        (13, "not a CSV record: ',' expected after '\"'"),
    ]
    assert listing.problems[0].format(path) == f"{path}:3: the name is longer than 100 characters"


def test_a_list_without_an_email_column_is_refused_at_line_one(tmp_path):
    path = write(tmp_path, "name,sections\n甲,papers\n")
    with pytest.raises(SubscriberError, match="the first line must be the header") as caught:
        read_subscribers(path, KNOWN)
    assert caught.value.line == 1


def test_a_missing_or_empty_list_has_nobody_on_it(tmp_path):
    assert read_subscribers(tmp_path / "none.csv", KNOWN).subscribers == []
    empty = write(tmp_path, "")
    assert read_subscribers(empty, KNOWN).subscribers == [] and list(scan_subscribers(empty, KNOWN)) == []


def test_a_list_that_is_not_utf8_or_cannot_be_read_is_one_clear_error(tmp_path):
    path = tmp_path / "subscribers.csv"
    path.write_bytes(HEADER.encode() + "李@example.com,李,,,\n".encode("gb18030"))
    with pytest.raises(SubscriberError, match="not UTF-8"):
        read_subscribers(path, KNOWN)
    with pytest.raises(SubscriberError, match="cannot read the subscriber list"):
        read_subscribers(tmp_path, KNOWN)  # a directory


def test_every_line_is_streamed_with_its_problem_or_subscriber(tmp_path):
    path = write(tmp_path, HEADER + "a@example.com,,,,\n\nbad,,,,\nb@example.com,,,,\n")
    rows = [(s.email if s else None, p.line if p else None) for s, p in scan_subscribers(path, KNOWN)]
    assert rows == [("a@example.com", None), (None, None), (None, 4), ("b@example.com", None)]
    assert [s.line for s in iter_subscribers(path, KNOWN)] == [2, 5]


def test_one_subscriber_is_found_without_reading_the_others_in_full(tmp_path):
    path = write(tmp_path, MIXED + "not-an-address,,,,\n")
    assert find_subscriber(path, KNOWN, "LEFT@example.com").status == "unsubscribed"
    assert find_subscriber(path, KNOWN, "nobody@example.com") is None


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "a,b@example.com",
        "a;b@example.com",
        "<a@example.com>",
        "a@example.com\r\nBcc: x@example.com",
        "a\x00@example.com",
        "a@ab--cd.example.com",  # IDNA forbids "--" there
        "a@host.invalid",
        "a@printer.local",
        "a@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 57 + ".com",  # 255 characters
        "a..b@example.com",
        "a@example",
        "李雷@example.com",  # an SMTPUTF8 address: the relay may not take it
    ],
)
def test_addresses_that_cannot_be_mailed_are_refused(address):
    with pytest.raises(SubscriberError, match="invalid address"):
        check_email(address)


def test_a_separator_or_line_break_in_an_address_is_named_as_such():
    with pytest.raises(SubscriberError, match="it contains a separator or line break"):
        check_email("a@example.com\r\nBcc: b@example.com")


def test_addresses_are_stored_normalised_and_known_in_lower_case():
    longest = "a@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + "." + "g" * 56 + ".com"
    assert len(longest) == 254 and check_email(longest) == longest
    assert check_email("  Li.Lei+news@Example.COM ") == "Li.Lei+news@example.com"
    assert check_email("reader@Bücher.example") == "reader@xn--bcher-kva.example"
    assert address_key("Li.Lei@Example.COM") == "li.lei@example.com"
    assert address_key("  Not An Address ") == "not an address"


def test_sections_are_typed_with_semicolons_or_commas_and_must_be_known():
    assert parse_sections(" papers, blogs;;news ", KNOWN) == {"papers", "blogs", "news"}
    assert parse_sections("", KNOWN) == frozenset()
    with pytest.raises(SubscriberError, match=r"unknown section 'gossip' \(known: apps, blogs, news"):
        parse_sections("papers;gossip", KNOWN)


# -- changes -----------------------------------------------------------------------------------


def test_adding_an_active_address_again_is_refused_and_changes_nothing(tmp_path):
    path = write(tmp_path)
    before = path.read_bytes()
    with pytest.raises(SubscriberError, match=r"A@example\.com is already subscribed") as caught:
        add_subscriber(path, KNOWN, "A@example.com", today=TODAY)
    assert caught.value.line == 2 and path.read_bytes() == before


def test_a_bounced_address_added_again_is_active_from_today(tmp_path):
    path = write(tmp_path)
    back = add_subscriber(path, KNOWN, "gone@example.com", name="回来", today=TODAY)
    assert (back.status, back.since, back.name) == ("active", "2026-11-22", "回来")
    assert folded(path).splitlines()[3] == "gone@example.com,回来,,active,2026-11-22"


def test_status_changes_report_who_changed(tmp_path):
    path = write(tmp_path)
    wanted = {"a@example.com": "bounced", "gone@example.com": "bounced", "quiet@example.com": "unsubscribed"}
    changed = set_statuses(path, KNOWN, wanted)
    assert [(s.email, s.status) for s in changed] == [
        ("a@example.com", "bounced"),
        ("quiet@example.com", "unsubscribed"),
    ]
    assert set_status(path, KNOWN, "nobody@example.com", "bounced") is None
    assert set_status(path, KNOWN, "LEFT@example.com", "active").status == "active"
    assert path.read_text(encoding="utf-8") == MIXED  # until the fold, the changes are in the journal
    assert [(s.email, s.status) for s in read_subscribers(path, KNOWN).subscribers] == [
        ("a@example.com", "bounced"),
        ("left@example.com", "active"),
        ("gone@example.com", "bounced"),
        ("quiet@example.com", "unsubscribed"),
    ]
    assert folded(path) == (
        HEADER
        + "a@example.com,甲,papers,bounced,2026-01-01\n"
        + "left@example.com,乙,,active,2025-05-05\n"
        + "gone@example.com,,,bounced,\n"
        + "quiet@example.com,,,unsubscribed,\n"
    )


def test_choosing_sections_keeps_the_rest_of_the_line(tmp_path):
    path = write(tmp_path)
    chosen = set_sections(path, KNOWN, "A@example.com", frozenset({"news", "blogs"}))
    assert chosen.sections == {"news", "blogs"}
    assert set_sections(path, KNOWN, "nobody@example.com", frozenset()) is None
    assert folded(path).splitlines()[1] == "a@example.com,甲,blogs;news,active,2026-01-01"
    assert path.read_text(encoding="utf-8") == MIXED.replace(
        "甲,papers,", "甲,blogs;news,"
    )  # the rest as it was


def test_unsubscribing_keeps_the_line_and_purging_erases_it(tmp_path):
    path = write(tmp_path)
    assert remove_subscriber(path, KNOWN, "a@example.com").status == "active"  # as it was
    assert folded(path).splitlines()[1] == "a@example.com,甲,papers,unsubscribed,2026-01-01"
    remove_subscriber(path, KNOWN, "quiet@example.com", purge=True)
    assert "quiet@example.com" not in folded(path)
    assert path.read_text(encoding="utf-8") == MIXED.replace(
        "active,2026-01-01", "unsubscribed,2026-01-01"
    ).replace("quiet@example.com,,,,\n", "")
    with pytest.raises(SubscriberError, match=r"nobody@example\.com is not on the list"):
        remove_subscriber(path, KNOWN, "nobody@example.com")


def test_an_address_added_to_a_list_without_a_final_newline_starts_its_own_line(tmp_path):
    path = write(tmp_path, HEADER + "a@example.com,,,,\nb@example.com,,,,")
    add_subscriber(path, KNOWN, "c@example.com", today=TODAY)
    expected = HEADER + "a@example.com,,,,\nb@example.com,,,,\nc@example.com,,,active,2026-11-22\n"
    assert folded(path) == expected


def test_purging_from_a_hand_made_list_keeps_its_header(tmp_path):
    path = write(tmp_path, "email,name\na@example.com,甲\nb@example.com,乙\n")
    remove_subscriber(path, KNOWN, "a@example.com", purge=True)
    assert folded(path) == "email,name\nb@example.com,乙\n"


def test_a_hand_made_list_gets_the_missing_columns_when_digest_writes_a_record(tmp_path):
    path = write(tmp_path, "email,name\na@example.com,甲\n")
    add_subscriber(path, KNOWN, "b@example.com", sections=frozenset({"papers"}), today=TODAY)
    assert folded(path) == (
        "email,name,sections,status,since\na@example.com,甲\nb@example.com,,papers,active,2026-11-22\n"
    )


def test_an_import_adds_the_new_addresses_once_and_keeps_their_since(tmp_path):
    path = write(tmp_path)
    source = write(
        tmp_path,
        HEADER + "new@example.com,新,,active,2020-02-02\nA@example.com,,,,\nother@example.com,,,,\nbad,,,,\n",
        name="import.csv",
    )
    report = import_subscribers(path, KNOWN, source, today=TODAY)
    assert (report.added, report.present) == (("new@example.com", "other@example.com"), ("A@example.com",))
    assert [p.line for p in report.problems] == [5]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[-2:] == ["new@example.com,新,,active,2020-02-02", "other@example.com,,,active,2026-11-22"]
    again = import_subscribers(path, KNOWN, source, today=TODAY)
    assert again.added == () and len(again.present) == 3


def test_an_import_does_not_add_back_an_address_erased_just_before(tmp_path):
    path = write(tmp_path)
    remove_subscriber(path, KNOWN, "left@example.com", purge=True)  # pending in the journal
    source = write(tmp_path, HEADER + "left@example.com,,,,\n", name="import.csv")
    report = import_subscribers(path, KNOWN, source, today=TODAY)  # the fold erases it in the same rewrite
    assert (report.added, report.present) == ((), ("left@example.com",))
    assert "left@example.com" not in path.read_text(encoding="utf-8")


def test_a_change_to_an_address_on_a_line_that_cannot_be_read_names_that_line(tmp_path):
    path = write(tmp_path, HEADER + "a@example.com,,,,\nbad@example.com,,,paused,\n")
    with pytest.raises(SubscriberUnavailable) as unavailable:
        set_status(path, KNOWN, "bad@example.com", "unsubscribed")  # the index is built first
    assert str(unavailable.value).startswith(f"{path}:3: bad@example.com is on a line that cannot be read")


# -- export and list -------------------------------------------------------------------------------


def test_export_writes_only_the_chosen_statuses():
    listing = [
        Subscriber("a@example.com", "甲", frozenset({"papers", "blogs"}), "active", "2026-01-01"),
        Subscriber("b@example.com", "", frozenset(), "bounced", ""),
    ]
    assert (
        export_csv(listing)
        == HEADER + "a@example.com,甲,blogs;papers,active,2026-01-01\nb@example.com,,,bounced,\n"
    )
    assert export_csv(listing, {"bounced"}) == HEADER + "b@example.com,,,bounced,\n"
    assert export_csv(listing, {"unsubscribed"}) == HEADER


def test_subscribers_export_and_list_show_exactly_the_chosen_status(site, run_env):
    path = site.root / "subscribers.csv"
    path.write_text(MIXED, encoding="utf-8")

    def run(*args):
        done = run_digest(["subscribers", *args, "--config", str(site.config_path)], run_env)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    for status, expected in STATUSES.items():
        exported = run("export", "--status", status)
        assert exported[0] == HEADER.strip()
        assert [line.split(",")[0] for line in exported[1:]] == expected, status
        assert all(line.split(",")[3] == status for line in exported[1:])
    everyone = ["a@example.com", "left@example.com", "gone@example.com", "quiet@example.com"]
    assert [line.split(",")[0] for line in run("export", "--status", "all")[1:]] == everyone
    assert [line.split("\t")[0] for line in run("list")] == STATUSES["active"]  # list's default: active
    assert run("list", "--status", "unsubscribed") == ["left@example.com\t乙\tall\tunsubscribed\t2025-05-05"]


def test_a_change_to_the_record_that_leaves_a_quote_open_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, HEADER + 'a@example.com,"甲,papers,active,\nb@example.com,乙,,active,\n')
    for address, line in (("A@example.com", 2), ("b@example.com", 3)):
        with pytest.raises(SubscriberUnavailable, match="on a line that cannot be read") as caught:
            set_status(path, KNOWN, address, "bounced")
        assert caught.value.line == line
    assert read_journal(path).changes == ()  # nothing was recorded for either


def test_a_fold_with_nothing_to_write_leaves_a_hand_edited_list_alone_and_its_index_ready(tmp_path):
    path = write(tmp_path)
    path.write_text(MIXED + "new@example.com,新,,,\n", encoding="utf-8")  # saved by hand: the index is stale
    before = path.stat()
    assert fold_journal(path, KNOWN) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    row = lookup_index(path, list_signature(path), "new@example.com")  # the next change reads no list
    assert (row.line, row.email, row.name, row.status) == (6, "new@example.com", "新", "active")


def test_an_import_from_a_file_that_is_not_there_is_refused_and_changes_nothing(tmp_path):
    path = write(tmp_path)
    with pytest.raises(SubscriberError, match="no such file to import") as caught:
        import_subscribers(path, KNOWN, tmp_path / "missing.csv", today=TODAY)
    assert caught.value.path == tmp_path / "missing.csv"
    assert path.read_text(encoding="utf-8") == MIXED


def test_a_rewrite_that_cannot_write_its_temporary_copy_leaves_the_list_as_it_was(tmp_path):
    long_list = HEADER + "".join(f"reader{n:05d}@example.com,,,active,2026-01-01\n" for n in range(3000))
    path = write(tmp_path, long_list)
    set_status(path, KNOWN, "reader00007@example.com", "unsubscribed")  # journaled, index built
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, limit[1]))  # the list is ~130 KB
    try:
        with pytest.raises(DigestError, match=f"^{path}: .*File too large"):
            fold_journal(path, KNOWN)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, ignored)
    assert path.read_text(encoding="utf-8") == long_list
    assert find_subscriber(path, KNOWN, "reader00007@example.com").status == "unsubscribed"  # still pending
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != path.name and ".lock" not in p.name) == [
        f".{path.name}.index",
        f".{path.name}.journal",
    ]
