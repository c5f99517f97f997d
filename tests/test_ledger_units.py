"""The ledger's reading rules against a plain model, in milliseconds: who is done, who was refused, when.

A send, ``digest status`` and the release rules all ask the ledger the same
questions through three readers (the whole summary, the streaming scan, the
finish marker); each is checked here against a model of the rules written out
plainly, over generated ledgers of several rounds and shard files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import StateError
from digest.send import ledger as ledger_module
from digest.send.ledger import (
    LedgerTally,
    ledger_path,
    read_ledger,
    read_recipients,
    read_tally,
    recipients_path,
    scan_round,
    shard_sizes,
    write_recipients,
)
from digest.send.ledger_writer import REPAIR_BLOCK, LedgerWriter

RANK = {"deferred": 0, "skipped": 1, "failed": 2, "sent": 3}
STEM = "2026-11-01"
NOW = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
READERS = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]


def outcome_line(to: str, status: str, round_: int = 1, code: int | None = None) -> dict:
    record = {"to": to, "status": status, "round": round_, "at": "2026-11-01T08:00:00"}
    if code is not None:
        record["code"] = code
    return record


def write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def model(files: list[list[dict]]) -> tuple[int, bool, bool, dict[str, dict]]:
    """The rules, plainly: the round is the last start marker of the main file; per recipient of that
    round the most final outcome wins (sent, failed, skipped, deferred; any other status least), and of
    two equally final ones the later line."""
    current, started, finished = 1, False, set()
    for record in files[0]:
        if "start_round" in record:
            current, started = record["start_round"], True
        elif "finished_round" in record:
            finished.add(record["finished_round"])
    best: dict[str, dict] = {}
    for records in files:
        for record in records:
            if "to" not in record or record["round"] != current:
                continue
            known = best.get(record["to"])
            if known is None or RANK.get(record["status"], -1) >= RANK.get(known["status"], -1):
                best[record["to"]] = record
    return current, started, current in finished, best


entries = st.one_of(
    st.builds(
        outcome_line,
        st.sampled_from(READERS),
        st.sampled_from(["sent", "failed", "deferred", "skipped", "queued"]),
        st.integers(1, 3),
        st.sampled_from([None, 550, 421]),
    ),
    st.builds(lambda n: {"start_round": n, "at": "x"}, st.integers(1, 3)),
    st.builds(lambda n: {"finished_round": n, "at": "x", "counts": {}}, st.integers(1, 3)),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(entries, max_size=12), min_size=1, max_size=3))
def test_every_reader_agrees_with_the_rules(tmp_path_factory, files):
    state = tmp_path_factory.mktemp("state")
    files[1:] = [[r for r in records if "to" in r] for records in files[1:]]  # markers: main file only
    for shard, records in enumerate(files):
        write_lines(ledger_path(state, STEM, shard), records)
    current, started, finished, best = model(files)

    summary = read_ledger(state, STEM)
    assert (summary.round, summary.started, summary.finished) == (current, started, finished)
    assert {to: o.status for to, o in summary.outcomes.items()} == {to: r["status"] for to, r in best.items()}
    refused = {to for to, r in best.items() if r["status"] == "failed" and r.get("code") is not None}
    assert summary.refused == refused
    assert summary.exists == bool(best or started or finished)

    scan = scan_round(state, STEM)
    assert (scan.round, scan.started, scan.finished, scan.refused) == (current, started, finished, refused)
    counts: dict[str, int] = {}
    for record in best.values():
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    assert scan.tally().counts == counts
    assert scan.exists == summary.exists
    assert {to for to in READERS if to in scan.final} == summary.done()
    assert {to for to in READERS if to in scan.reached} == set(best)

    some = READERS[::2]
    only = read_ledger(state, STEM, only=some)
    assert only.outcomes == {to: o for to, o in summary.outcomes.items() if to in some}
    assert (only.round, only.started, only.finished) == (current, started, finished)


def test_a_made_up_status_never_outranks_a_known_one_and_counts_on_its_own(tmp_path):
    records = [
        outcome_line("a@example.com", "deferred"),
        outcome_line("a@example.com", "queued"),
        outcome_line("b@example.com", "queued"),
        outcome_line("b@example.com", "deferred"),
        outcome_line("c@example.com", "queued"),
        outcome_line("d@example.com", "queued"),
        outcome_line("d@example.com", "parked"),  # of two made-up statuses, the later line
    ]
    write_lines(ledger_path(tmp_path, STEM), records)
    assert scan_round(tmp_path, STEM).tally().counts == {"deferred": 2, "queued": 1, "parked": 1}
    assert {to: o.status for to, o in read_ledger(tmp_path, STEM).outcomes.items()} == {
        "a@example.com": "deferred",
        "b@example.com": "deferred",
        "c@example.com": "queued",
        "d@example.com": "parked",
    }


def test_a_ledger_of_endless_made_up_statuses_counts_at_most_251_of_them(tmp_path):
    """The scan keeps a status in a byte: the four known ones and 251 more; the rest count for nothing."""
    records = [outcome_line(f"r{n}@example.com", f"odd{n}") for n in range(260)]
    write_lines(ledger_path(tmp_path, STEM), [*records, outcome_line("z@example.com", "sent")])
    scan = scan_round(tmp_path, STEM)
    assert len(scan.statuses) == 255
    counts = scan.tally().counts
    assert counts["sent"] == 1
    assert sorted(k for k in counts if k.startswith("odd")) == sorted(f"odd{n}" for n in range(251))


def test_a_later_refusal_then_a_delivery_leaves_nobody_refused(tmp_path):
    records = [
        outcome_line("a@example.com", "failed", code=550),
        outcome_line("a@example.com", "sent"),
        outcome_line("b@example.com", "sent"),
        outcome_line("b@example.com", "failed", code=550),  # less final than sent: ignored
        outcome_line("c@example.com", "failed"),  # failed without a server's reply: not a refusal
        outcome_line("d@example.com", "failed", code=550),
    ]
    write_lines(ledger_path(tmp_path, STEM), records)
    assert scan_round(tmp_path, STEM).refused == {"d@example.com"}
    assert read_ledger(tmp_path, STEM).refused == {"d@example.com"}


@pytest.mark.parametrize(
    ("markers", "started", "finished"),
    [([], False, False), ([{"start_round": 1}], True, False), ([{"finished_round": 1}], False, True)],
)
def test_a_round_with_no_outcome_exists_once_it_has_a_marker(tmp_path, markers, started, finished):
    write_lines(ledger_path(tmp_path, STEM), markers)
    scan = scan_round(tmp_path, STEM)
    assert (scan.started, scan.finished, scan.exists) == (started, finished, started or finished)
    tally = read_tally(tmp_path, STEM)
    assert (tally.finished, tally.exists) == (finished, started or finished)


# -- the finish marker and the round's recipients ------------------------------------------------


def finished_ledger(state: Path) -> None:
    with LedgerWriter(ledger_path(state, STEM)) as writer:
        writer._write(json.dumps(outcome_line("a@example.com", "sent")).encode() + b"\n")
        tally = LedgerTally(1, {"sent": 7})  # what the marker says is what is read
        writer.finish_round(1, NOW, tally, shard_sizes(state, STEM))


def test_a_finish_marker_on_the_last_line_is_the_tally(tmp_path):
    finished_ledger(tmp_path)
    assert read_tally(tmp_path, STEM) == LedgerTally(1, {"sent": 7}, finished=True, exists=True)


def test_a_shard_file_that_grew_after_the_marker_is_read_line_by_line(tmp_path):
    write_lines(ledger_path(tmp_path, STEM, 1), [outcome_line("b@example.com", "sent")])
    finished_ledger(tmp_path)
    with ledger_path(tmp_path, STEM, 1).open("ab") as handle:
        handle.write(json.dumps(outcome_line("c@example.com", "deferred")).encode() + b"\n")
    tally = read_tally(tmp_path, STEM)
    assert tally.counts == {"sent": 2, "deferred": 1}


def test_a_hand_edited_marker_is_not_believed(tmp_path):
    finished_ledger(tmp_path)
    path = ledger_path(tmp_path, STEM)
    lines = path.read_bytes().splitlines()
    marker = json.loads(lines[-1])
    marker["counts"] = {"sent": "many"}
    path.write_bytes(b"\n".join([*lines[:-1], json.dumps(marker).encode()]) + b"\n")
    assert read_tally(tmp_path, STEM).counts == {"sent": 1}


def test_without_a_marker_the_tally_counts_the_lines_and_knows_who_was_due(tmp_path):
    write_lines(ledger_path(tmp_path, STEM), [outcome_line("a@example.com", "sent")])
    due = [{"key": to, "email": to} for to in READERS]
    assert write_recipients(recipients_path(tmp_path, STEM, 1), due) == 4
    tally = read_tally(tmp_path, STEM)
    assert (tally.counts, tally.due, tally.finished) == ({"sent": 1}, 4, False)


@pytest.mark.parametrize("last", [b'{"due": "4"}\n', b"not json\n", b""])
def test_a_recipients_file_without_a_count_leaves_due_unknown(tmp_path, last):
    write_lines(ledger_path(tmp_path, STEM), [outcome_line("a@example.com", "sent")])
    path = recipients_path(tmp_path, STEM, 1)
    path.write_bytes(b'{"key": "a@example.com"}\n' + last)
    assert read_tally(tmp_path, STEM).due is None


def test_recipients_are_written_whole_into_a_new_folder_and_read_back(tmp_path):
    path = tmp_path / "new" / "folder" / "x.round1.due"
    due = [{"key": "a@example.com", "email": "A@example.com", "sections": ["news"]}]
    assert write_recipients(path, due) == 1
    assert list(read_recipients(path)) == due
    assert json.loads(path.read_bytes().splitlines()[-1]) == {"due": 1}
    assert os.listdir(path.parent) == [path.name]


@pytest.mark.parametrize(
    ("error", "raised"), [(OSError(28, "No space left"), StateError), (KeyError, KeyError)]
)
def test_recipients_cut_short_leave_no_file_and_no_temporary(tmp_path, error, raised):
    path = tmp_path / "x.round1.due"

    def due():
        yield {"key": "a@example.com"}
        raise error

    with pytest.raises(raised):
        write_recipients(path, due())
    assert os.listdir(tmp_path) == []


def test_recipients_missing_or_damaged_are_an_error_naming_the_file(tmp_path):
    path = tmp_path / "x.round1.due"
    with pytest.raises(StateError) as missing:
        list(read_recipients(path))
    assert missing.value.path == path
    path.write_bytes(b'{"key": "a@example.com"}\n{"key": \n')
    with pytest.raises(StateError, match="damaged"):
        list(read_recipients(path))


def test_a_ledger_that_fails_mid_read_is_an_error_not_a_shorter_ledger(tmp_path, monkeypatch):
    write_lines(ledger_path(tmp_path, STEM), [outcome_line("a@example.com", "sent")])

    class FailingHandle:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __iter__(self):
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(ledger_module.Path, "open", lambda self, mode="r": FailingHandle())
    with pytest.raises(StateError, match="Input/output error"):
        scan_round(tmp_path, STEM)


# -- the writer's repair of a torn last line ----------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b'{"a": 1}\n{"b": 2}\n', b'{"a": 1}\n{"b": 2}\n'),
        (b'{"a": 1}\n{"b": ', b'{"a": 1}\n'),
        (b'{"b": ', b""),
        (b"", b""),
        (b'{"a": 1}\n' + b"x" * (2 * REPAIR_BLOCK + 5), b'{"a": 1}\n'),
        (b"x" * (REPAIR_BLOCK + 1) + b"\n" + b"y" * REPAIR_BLOCK, b"x" * (REPAIR_BLOCK + 1) + b"\n"),
    ],
)
def test_opening_a_ledger_cuts_only_a_torn_last_line(tmp_path, before, after):
    path = ledger_path(tmp_path, STEM)
    path.parent.mkdir(parents=True)
    path.write_bytes(before)
    with LedgerWriter(path):
        pass
    assert path.read_bytes() == after
