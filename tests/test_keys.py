"""The digest sets a send keeps in place of address strings, and the streaming count of a ledger."""

from __future__ import annotations

from pathlib import Path

from digest.send.ledger import Outcome, ledger_path, read_ledger, scan_round
from digest.send.ledger_writer import LedgerWriter
from digest.subscribers.keys import KeySet


def test_keyset_holds_every_address_it_was_given_and_no_other() -> None:
    keys = KeySet(f"reader{n}@example.com" for n in range(20_000))  # grows its table many times
    assert len(keys) == 20_000
    assert all(f"reader{n}@example.com" in keys for n in range(20_000))
    assert not any(f"other{n}@example.com" in keys for n in range(20_000))


def test_adding_a_new_key_says_whether_it_was_new_as_a_set_would() -> None:
    keys, model = KeySet(), set()
    for n in [*range(3000), *range(0, 3000, 7), *range(2990, 6000)]:  # repeats, and growth between them
        address = f"reader{n}@example.com"
        assert keys.add_new(address) == (address not in model)
        model.add(address)
    assert len(keys) == len(model) == 6000
    assert all(address in keys for address in model) and "other@example.com" not in keys


def test_streaming_count_agrees_with_reading_every_outcome(tmp_path: Path) -> None:
    """Most final outcome wins across shard files; refused addresses are the ones bounce marking sees."""
    lines = [
        (0, Outcome("a@example.com", "deferred", 451)),
        (1, Outcome("a@example.com", "sent", 250)),
        (0, Outcome("b@example.com", "failed", 550)),
        (1, Outcome("c@example.com", "skipped")),
        (0, Outcome("d@example.com", "deferred", 421)),
        (1, Outcome("e@example.com", "sent", 250)),
        (0, Outcome("e@example.com", "deferred", 451)),  # later, but less final
    ]
    for shard, outcome in lines:
        path = ledger_path(tmp_path, "2026-11-01", shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(outcome.line())
    summary, scan = read_ledger(tmp_path, "2026-11-01"), scan_round(tmp_path, "2026-11-01")
    assert scan.tally() == summary.tally()
    assert scan.tally().counts == {"sent": 2, "failed": 1, "skipped": 1, "deferred": 1}
    assert scan.refused == summary.refused == {"b@example.com"}
    for address in "abcde":
        assert (f"{address}@example.com" in scan.final) == (f"{address}@example.com" in summary.done())
        assert f"{address}@example.com" in scan.reached
    assert len(scan.final) == 4 and "z@example.com" not in scan.reached


def test_ledger_writer_groups_lines_into_one_fsync(tmp_path: Path) -> None:
    import asyncio

    async def many(writer: LedgerWriter) -> None:
        await asyncio.gather(*(writer.record(Outcome(f"r{n}@example.com", "sent", 250)) for n in range(8)))

    with LedgerWriter(ledger_path(tmp_path, "x")) as writer:
        asyncio.run(many(writer))
        assert (writer.commits, writer.lines) == (1, 8)
    assert len(read_ledger(tmp_path, "x").outcomes) == 8
