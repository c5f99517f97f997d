"""Benchmark: one unsubscribe against a 1,000,000-line subscriber list, journaled vs rewritten.

Run: python bench/bench_unsubscribe.py [--lines 1000000] [--changes 200] [--naive-changes 3] [--only journal]

Generates the list (about 57 MB), then in a separate process for each:

* journal: ``set_status`` as the web endpoint calls it: the address looked up in
  the list's index, one fsynced line appended to the change journal. The index
  is built once first (by a fold, as the start of a send or a ``digest
  subscribers`` command leaves it); that time is printed too, with one fold of
  all the changes at the end.
* naive: the old full rewrite (copied below as it was): every record streamed
  through the CSV reader under the lock into a new file, fsynced and renamed
  over the list, for every change.

Prints ms per change and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path

from common import ROOT

KNOWN = {"news", "papers", "projects", "blogs", "apps"}


def generate(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,sections,status,since\n")
        for n in range(lines):
            handle.write(f"reader{n}@example.org,读者{n},,active,2026-01-01\n")


# -- the old algorithm: one streaming rewrite of the whole list per change -------------------------


def naive_rewrite(path: Path, known: Collection[str], edit: Callable[[object], object]) -> bool:
    """digest's rewrite before the journal (``_rewrite`` + ``_rewritten``), unchanged in substance."""
    from digest.fsutil import atomic_write, file_lock
    from digest.subscribers.model import HEADER, format_row, full_header
    from digest.subscribers.reading import ListScan, list_signature
    from digest.subscribers.rewrite import KEEP

    with file_lock(path.with_name(f".{path.name}.lock"), what="the subscriber list", wait=30):
        for _ in range(5):
            before = list_signature(path)
            scan = ListScan(path, known)
            body: list[str] = []
            keys: dict[str, int] = {}  # every address on the list, for the appending operations
            changed = False
            for row, problem in scan:
                if row.key is not None and row.key not in keys:
                    keys[row.key] = (
                        -problem.line if problem else (row.subscriber.line if row.subscriber else 0)
                    )
                subscriber = row.subscriber
                result = KEEP if subscriber is None else edit(subscriber)
                if result is KEEP:
                    body.append(row.text)
                elif result is not None:
                    body.append(
                        format_row(full_header(scan.header), result, row.text, scan.header) + scan.newline
                    )
                    changed = True
            if not changed:
                return False
            if list_signature(path) != before:
                continue
            header = scan.header_text or ",".join(HEADER) + scan.newline
            atomic_write(path, (header + "".join(body)).encode("utf-8"), mode=path.stat().st_mode & 0o777)
            return True
    raise RuntimeError("the list kept changing")


def naive_set_status(path: Path, email: str, status: str) -> None:
    from dataclasses import replace

    from digest.subscribers.rewrite import KEEP

    def edit(subscriber):
        return replace(subscriber, status=status) if subscriber.key == email else KEEP

    naive_rewrite(path, KNOWN, edit)


# -- one process per mode ---------------------------------------------------------------------------


def targets(lines: int, changes: int) -> list[str]:
    step = max(1, lines // changes)
    return [f"reader{(n * step + step // 2) % lines}@example.org" for n in range(changes)]


def child(mode: str, path: Path, lines: int, changes: int) -> dict[str, object]:
    from digest.subscribers.changes import find_subscriber, fold_journal, set_status

    result: dict[str, object] = {"mode": mode}
    if mode == "journal":
        start = time.perf_counter()
        fold_journal(path, KNOWN)  # builds the index, as the start of a send leaves it
        result["index_s"] = time.perf_counter() - start
    samples = []
    for email in targets(lines, changes):
        start = time.perf_counter()
        if mode == "journal":
            set_status(path, KNOWN, email, "unsubscribed")
        else:
            naive_set_status(path, email, "unsubscribed")
        samples.append((time.perf_counter() - start) * 1000)
    if mode == "journal":
        assert find_subscriber(path, KNOWN, targets(lines, changes)[-1]).status == "unsubscribed"
        start = time.perf_counter()
        fold_journal(path, KNOWN)
        result["fold_s"] = time.perf_counter() - start
    samples.sort()
    result.update(
        median_ms=samples[len(samples) // 2],
        p95_ms=samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        max_ms=samples[-1],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result


def run(mode: str, path: Path, lines: int, changes: int) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", mode, "--list", str(path), "--lines", str(lines)]
    output = subprocess.run([*command, "--changes", str(changes)], capture_output=True, text=True, cwd=ROOT)
    if output.returncode:
        raise SystemExit(output.stderr)
    return json.loads(output.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--naive-changes", type=int, default=3)
    parser.add_argument("--only", choices=["journal", "naive"], help="run one of the two")
    parser.add_argument("--child", choices=["journal", "naive"])
    parser.add_argument("--list", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.list, args.lines, args.changes)))
        return
    with tempfile.TemporaryDirectory() as tmp:  # on disk here (ext4), so fsync costs what it costs
        for mode, changes in (("journal", args.changes), ("naive", args.naive_changes)):
            if args.only and mode != args.only:
                continue
            path = Path(tmp) / mode / "subscribers.csv"
            path.parent.mkdir()
            generate(path, args.lines)
            size = path.stat().st_size / 1e6
            r = run(mode, path, args.lines, changes)
            extra = ""
            if mode == "journal":
                extra = f"; index built once in {r['index_s']:.1f} s"
                extra += f", {changes} changes folded in {r['fold_s']:.1f} s"
            print(
                f"{mode:<8} {args.lines:,} lines ({size:.0f} MB), {changes} unsubscribes: "
                f"median {r['median_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
                "per change, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB{extra}"
            )


if __name__ == "__main__":
    main()
