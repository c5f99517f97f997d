"""Benchmark: parsing one issue (markdown to the typed model, summaries rendered and sanitised).

Run: python bench/bench_parse.py
"""

from __future__ import annotations

from common import issue_files, measure, report
from digest.newsletter.parse import parse_issue


def main() -> None:
    files = issue_files()
    largest = max(files, key=lambda p: p.stat().st_size)
    data = largest.read_bytes()
    parse_issue(data, largest)  # import and warm the renderer once
    stats = measure(lambda: parse_issue(data, largest), repeat=50)
    items = len(parse_issue(data, largest).items)
    report(f"parse {largest.name} ({len(data) // 1024} KB, {items} items)", stats)
    every = measure(lambda: [parse_issue(p.read_bytes(), p) for p in files], repeat=5, warmup=1)
    report(f"parse all {len(files)} issues", every, f"({every['median_ms'] / len(files):.2f} ms/issue)")


if __name__ == "__main__":
    main()
