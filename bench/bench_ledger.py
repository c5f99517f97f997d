"""Benchmark: where every mailed issue stands (``digest run`` / ``digest status`` ask for each issue).

Run: python bench/bench_ledger.py [--issues 45] [--recipients 10000]

Writes one finished ledger per issue (as a real send leaves it: an outcome line
per recipient, then the finish marker with the round's counts) and times
reading every issue's tally from the markers, against counting every line; and
reading the history of 10 refused addresses (what bounce marking needs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from common import measure, report
from digest.send.ledger import Outcome, ledger_path, read_ledger, read_tally
from digest.send.ledger_writer import LedgerWriter

NOW = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC)


def write_ledger(state: Path, key: str, recipients: int) -> None:
    path = ledger_path(state, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (
        Outcome(f"user{n}@example.org", "sent", 250, f"<{key}.{n}@example.org>", at=NOW.isoformat()).line()
        for n in range(recipients)
    )
    path.write_bytes(b"".join(lines))
    with LedgerWriter(path) as writer:
        writer.finish_round(1, NOW, read_ledger(state, key).tally(), {})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=45)
    parser.add_argument("--recipients", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        keys = [(dt.date(2024, 1, 1) + dt.timedelta(days=14 * n)).isoformat() for n in range(args.issues)]
        for key in keys:
            write_ledger(state, key, args.recipients)
        label = f"{args.issues} issues x {args.recipients:,} recipients"
        report(
            f"tallies from finish markers ({label})", measure(lambda: [read_tally(state, k) for k in keys])
        )
        report(
            f"tallies by reading every line ({label})",
            measure(lambda: [read_ledger(state, k).tally() for k in keys], repeat=3, warmup=1),
        )
        refused = {f"user{n}@example.org" for n in range(0, args.recipients, args.recipients // 10)}
        report(
            f"10 refused addresses' history ({label})",
            measure(lambda: [read_ledger(state, k, only=refused) for k in keys], repeat=5, warmup=1),
        )


if __name__ == "__main__":
    main()
