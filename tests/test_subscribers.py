"""The subscriber list: hand-edited CSV read line by line, changed under a lock, never losing a line."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from zoneinfo import ZoneInfo

import pytest

from conftest import KNOWN, run_digest
from digest.errors import SubscriberError
from digest.subscribers.changes import (
    add_subscriber,
    fold_journal,
    import_subscribers,
    remove_subscriber,
    set_status,
)
from digest.subscribers.model import export_csv
from digest.subscribers.reading import read_subscribers

TODAY = dt.date(2026, 11, 22)

MESSY = """\
email,name,sections,status,since
good@example.com,好人,,active,2026-01-01
not-an-address,坏,,active,
dup@example.com,甲,papers,active,
DUP@example.com,乙,,active,
sec@example.com,丙,papers;gossip,active,
stat@example.com,丁,,paused,
x@example.com,a,,active,2026-01-01,extra
"quoted, name"@example.com,,,active,
fine@example.com,"Lastname, Firstname",papers;blogs,,
when@example.com,,,active,yesterday

left@example.com,,,unsubscribed,2025-01-01
"""


def write(tmp_path, text=MESSY):
    path = tmp_path / "subscribers.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_bad_line_is_reported_with_its_number_and_only_it_is_skipped(tmp_path):
    listing = read_subscribers(write(tmp_path), KNOWN)
    assert [s.email for s in listing.subscribers] == [
        "good@example.com",
        "dup@example.com",
        "fine@example.com",
        "left@example.com",
    ]
    problems = {p.line: p.message for p in listing.problems}
    assert sorted(problems) == [3, 5, 6, 7, 8, 9, 11]
    assert "invalid address 'not-an-address'" in problems[3]
    assert "listed twice" in problems[5]
    assert "unknown section 'gossip'" in problems[6]
    assert "status 'paused'" in problems[7]
    assert "columns" in problems[8]
    assert "since 'yesterday'" in problems[11]
    fine = listing.find("FINE@example.com")
    assert fine.name == "Lastname, Firstname" and fine.sections == {"papers", "blogs"} and fine.active


def test_changes_keep_every_other_line_byte_for_byte(tmp_path):
    path = write(tmp_path)
    before = path.read_text(encoding="utf-8").splitlines()
    add_subscriber(path, KNOWN, "new@example.com", name="新", sections=frozenset({"papers"}), today=TODAY)
    remove_subscriber(path, KNOWN, "good@example.com")
    fold_journal(path, KNOWN)  # the changes went to the journal; the fold writes them into the list
    after = path.read_text(encoding="utf-8").splitlines()
    assert after[0] == before[0]
    assert after[1] == "good@example.com,好人,,unsubscribed,2026-01-01"
    assert after[2:13] == before[2:13]  # the bad lines too, in their place
    assert after[13] == "new@example.com,新,papers,active,2026-11-22"
    assert len(after) == len(before) + 1


def test_add_remove_purge_and_reactivate(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\n")
    add_subscriber(path, KNOWN, "A@Example.com", today=TODAY)
    with pytest.raises(SubscriberError, match="already subscribed"):
        add_subscriber(path, KNOWN, "a@example.com", today=TODAY)
    remove_subscriber(path, KNOWN, "a@example.com")
    assert read_subscribers(path, KNOWN).find("a@example.com").status == "unsubscribed"
    add_subscriber(path, KNOWN, "a@example.com", name="回来", today=TODAY)
    assert read_subscribers(path, KNOWN).find("a@example.com").active
    remove_subscriber(path, KNOWN, "a@example.com", purge=True)
    assert read_subscribers(path, KNOWN).subscribers == []
    with pytest.raises(SubscriberError, match="not on the list"):
        remove_subscriber(path, KNOWN, "a@example.com")


@pytest.mark.parametrize(
    ("address", "name"),
    [("bad", ""), ("a@b.c\nBcc: x@y.z", ""), ("ok@example.com", "Eve\nBcc: x"), ("用户@example.com", "")],
)
def test_invalid_input_is_refused(tmp_path, address, name):
    path = write(tmp_path, "email,name,sections,status,since\n")
    with pytest.raises(SubscriberError):
        add_subscriber(path, KNOWN, address, name=name, today=TODAY)
    assert path.read_text(encoding="utf-8") == "email,name,sections,status,since\n"


def test_import_and_export(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\nold@example.com,旧,,active,2025-01-01\n")
    source = tmp_path / "other.csv"
    source.write_text(
        "email,name\nold@example.com,Other\nfresh@example.com,新人\nbroken,\n", encoding="utf-8"
    )
    result = import_subscribers(path, KNOWN, source, today=TODAY)
    assert result.added == ("fresh@example.com",) and result.present == ("old@example.com",)
    assert [p.line for p in result.problems] == [4]
    listing = read_subscribers(path, KNOWN)
    assert listing.find("old@example.com").name == "旧"
    assert export_csv(listing.subscribers).splitlines() == [
        "email,name,sections,status,since",
        "old@example.com,旧,,active,2025-01-01",
        "fresh@example.com,新人,,active,2026-11-22",
    ]


def _add_many(args):
    path, start = args
    for n in range(start, start + 25):
        add_subscriber(path, KNOWN, f"user{n}@example.com", today=TODAY)


def test_concurrent_edits_from_several_processes_lose_nothing(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\n")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_add_many, [(path, n * 100) for n in range(4)])
    emails = {s.email for s in read_subscribers(path, KNOWN).subscribers}
    assert emails == {f"user{n * 100 + i}@example.com" for n in range(4) for i in range(25)}


def test_status_change_of_an_unknown_address_changes_nothing(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\na@example.com,,,active,\n")
    assert set_status(path, KNOWN, "b@example.com", "unsubscribed") is None
    assert set_status(path, KNOWN, "a@example.com", "bounced").status == "bounced"


def test_cli(site, run_env):
    def run(*args):
        return run_digest(["subscribers", *args, "--config", str(site.config_path)], run_env)

    today_before = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()  # the site's timezone
    assert run("add", "a@example.com", "--name", "甲", "--sections", "papers;blogs").returncode == 0
    today_after = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert run("add", "b@example.com").returncode == 0
    again = run("add", "a@example.com")
    assert again.returncode == 1 and "already subscribed" in again.stderr
    bad = run("add", "a@example.com", "--sections", "gossip")
    assert bad.returncode == 1 and "unknown section 'gossip'" in bad.stderr
    assert run("remove", "b@example.com").returncode == 0
    listed = run("list")
    assert listed.stdout in {
        f"a@example.com\t甲\tblogs;papers\tactive\t{day}\n" for day in (today_before, today_after)
    }
    exported = run("export", "--status", "all")
    assert exported.stdout.splitlines()[2].startswith("b@example.com,,,unsubscribed,")
    (site.root / "subscribers.csv").write_text(
        (site.root / "subscribers.csv").read_text() + "broken-line\n", encoding="utf-8"
    )
    listed = run("list")
    assert listed.returncode == 1
    assert f"{site.root / 'subscribers.csv'}:4: invalid address 'broken-line'" in listed.stderr
    assert "Traceback" not in listed.stderr


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from digest.subscribers.model import _plain_address  # noqa: E402

atom = st.text(alphabet="abcXYZ019.-_+!#'`{}~", min_size=1, max_size=70)
label = st.text(alphabet="abcxyz019-", min_size=1, max_size=70)
addresses = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    atom,
    st.lists(label, min_size=1, max_size=4),
    st.sampled_from(
        ["com", "org", "cn", "test", "local", "x1", "1x", "a-b", "museum", "c-", "io", "xn--p1ai", "ab--c"]
    ),
) | st.emails().map(str)


@settings(max_examples=5000, deadline=None)
@given(addresses)
def test_the_fast_path_accepts_exactly_what_email_validator_accepts(address):
    from email_validator import EmailNotValidError, validate_email

    fast = _plain_address(address)
    if fast is None:
        return  # the full check decides
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AssertionError(f"fast path accepted {address!r}, email-validator refuses: {exc}") from None
    assert fast == (valid.ascii_email or valid.normalized)


def test_a_list_without_status_column_can_still_unsubscribe(tmp_path):
    path = write(tmp_path, "email,name\na@example.com,甲\nb@example.com,乙\n")
    remove_subscriber(path, KNOWN, "a@example.com")
    fold_journal(path, KNOWN)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "email,name,sections,status,since"
    assert lines[1] == "a@example.com,甲,,unsubscribed,"
    assert lines[2] == "b@example.com,乙"  # untouched lines stay as they were
    listing = read_subscribers(path, KNOWN)
    assert [s.status for s in listing.subscribers] == ["unsubscribed", "active"]


def test_columns_digest_does_not_know_are_kept(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since,note\na@example.com,甲,,active,2026-01-01,VIP\n")
    set_status(path, KNOWN, "a@example.com", "bounced")
    fold_journal(path, KNOWN)
    assert path.read_text(encoding="utf-8").splitlines()[1] == "a@example.com,甲,,bounced,2026-01-01,VIP"


def test_importing_a_missing_file_is_an_error(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\n")
    with pytest.raises(SubscriberError, match="no such file"):
        import_subscribers(path, KNOWN, tmp_path / "missing.csv", today=TODAY)


def test_a_send_split_in_shards_reads_the_email_column_wherever_it_is(tmp_path):
    from digest.subscribers.reading import iter_subscribers

    path = write(tmp_path, "name,email\n甲,a@example.com\n乙,b@example.com\n丙,C@Example.com\n")
    seen = [s.email for s in iter_subscribers(path, KNOWN, keep=lambda a: a.lower() != "b@example.com")]
    assert seen == ["a@example.com", "C@example.com"]


def test_a_quoted_field_spanning_lines_is_one_bad_record_and_nobody_is_mailed_by_mistake(tmp_path):
    path = write(
        tmp_path,
        "email,name,sections,status,since\n"
        'han@example.com,"Han\nMeimei",,unsubscribed,2026-09-03\n'
        "ok@example.com,,,active,\n",
    )
    listing = read_subscribers(path, KNOWN)
    assert [s.email for s in listing.subscribers] == ["ok@example.com"]
    assert [p.line for p in listing.problems] == [2]
    assert "lines 2-3" in listing.problems[0].message
    set_status(path, KNOWN, "ok@example.com", "bounced")
    assert fold_journal(path, KNOWN)  # a rewrite keeps the record whole
    assert 'han@example.com,"Han\nMeimei",,unsubscribed,2026-09-03\n' in path.read_text(encoding="utf-8")


def test_header_spelling_and_crlf_line_endings_are_kept(tmp_path):
    path = tmp_path / "subscribers.csv"
    path.write_bytes(
        b'Email,Name,Sections,Status,Since,"notes, misc",Tag\r\n'
        b'a@example.com,A,,active,2026-01-01,"vip, paid",x\r\nb@example.com,B,,active,,,\r\n'
    )
    remove_subscriber(path, KNOWN, "a@example.com")
    remove_subscriber(path, KNOWN, "a@example.com")
    fold_journal(path, KNOWN)
    assert path.read_bytes() == (
        b'Email,Name,Sections,Status,Since,"notes, misc",Tag\r\n'
        b'a@example.com,A,,unsubscribed,2026-01-01,"vip, paid",x\r\nb@example.com,B,,active,,,\r\n'
    )


def test_an_address_on_an_unreadable_line_is_not_added_again(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\nli@example.com,Li,paper,unsubscribed,\n")
    with pytest.raises(SubscriberError, match="line that cannot be read") as caught:
        add_subscriber(path, KNOWN, "LI@example.com", today=TODAY)
    assert caught.value.line == 2
    source = tmp_path / "import.csv"
    source.write_text("email\nli@example.com\n", encoding="utf-8")
    assert import_subscribers(path, KNOWN, source, today=TODAY).present == ("li@example.com",)
    assert path.read_text(encoding="utf-8").count("li@example.com") == 1


def test_resubscribing_keeps_name_and_sections_unless_new_ones_are_given(tmp_path):
    path = write(
        tmp_path,
        "email,name,sections,status,since\nchen@example.org,Chen Jie,papers,unsubscribed,2025-01-01\n",
    )
    again = add_subscriber(path, KNOWN, "chen@example.org", today=TODAY)
    assert (again.name, again.sections, again.status, again.since) == (
        "Chen Jie",
        {"papers"},
        "active",
        "2026-11-22",
    )
    remove_subscriber(path, KNOWN, "chen@example.org")
    again = add_subscriber(
        path, KNOWN, "chen@example.org", name="陈杰", sections=frozenset({"blogs"}), today=TODAY
    )
    assert (again.name, again.sections) == ("陈杰", {"blogs"})


def test_removing_from_a_missing_list_creates_nothing(tmp_path):
    with pytest.raises(SubscriberError, match="not on the list"):
        remove_subscriber(tmp_path / "none.csv", KNOWN, "a@example.com")
    assert not (tmp_path / "none.csv").exists()


def test_a_hand_edit_made_during_a_rewrite_is_not_lost(tmp_path, monkeypatch):
    import digest.subscribers.rewrite as rewrite

    path = write(tmp_path, "email,name,sections,status,since\na@example.com,,,active,\n")
    real = rewrite.rewritten_list
    calls = []

    def editor_saves_meanwhile(*args, **kwargs):
        result = real(*args, **kwargs)
        if not calls:  # the editor saves the file after digest read it, before digest renames
            with path.open("a", encoding="utf-8") as handle:
                handle.write("hand@example.com,手写,,active,\n")
        calls.append(1)
        return result

    monkeypatch.setattr(rewrite, "rewritten_list", editor_saves_meanwhile)
    add_subscriber(path, KNOWN, "new@example.com", today=TODAY)
    fold_journal(path, KNOWN)
    emails = [s.email for s in read_subscribers(path, KNOWN).subscribers]
    assert emails == ["a@example.com", "hand@example.com", "new@example.com"]
    assert len(calls) == 2


def test_an_address_is_found_however_it_is_spelled(tmp_path):
    path = write(tmp_path, "email,name,sections,status,since\nreader@bücher.example,,,active,\n")
    listing = read_subscribers(path, KNOWN)
    stored = listing.subscribers[0].email
    assert stored == "reader@xn--bcher-kva.example"
    assert listing.find("Reader@Bücher.example").email == stored
    assert set_status(path, KNOWN, "READER@bücher.EXAMPLE", "unsubscribed").status == "unsubscribed"
    assert remove_subscriber(path, KNOWN, "reader@XN--BCHER-KVA.example").email == stored


@pytest.mark.parametrize(
    "address",
    ["reader@mail.test", "reader@a.b.invalid", "reader@printer.local", "reader@x.onion", "a@1.in-addr.arpa"],
)
def test_an_address_at_a_special_use_domain_is_refused_as_email_validator_refuses_it(address):
    from digest.errors import SubscriberError
    from digest.subscribers.model import check_email

    assert _plain_address(address) is None  # not the fast path's to accept
    with pytest.raises(SubscriberError, match="invalid address"):
        check_email(address)


def test_the_special_use_names_the_fast_path_declines_are_email_validators_own():
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    from digest.subscribers.model import SPECIAL_USE_DOMAINS

    assert {name.lower() for name in SPECIAL_USE_DOMAIN_NAMES} == SPECIAL_USE_DOMAINS
