"""Benchmark: parsing one issue (markdown to the typed model, summaries rendered and sanitised).

Run: python bench/bench_parse.py
"""

from __future__ import annotations

from pathlib import Path

from common import CORPUS, issue_files, measure, report
from digest.newsletter.parse import UndatedIssue, parse_issue

MORE = CORPUS.parent / "more"


def _parse_any(data: bytes, path: Path) -> object:
    """One file, an issue or not (an undated file is read as far as an issue would be)."""
    try:
        return parse_issue(data, path)
    except UndatedIssue as exc:
        return exc


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
    more = [
        (p.read_bytes(), p) for p in sorted(MORE.glob("*/issues/**/*")) if p.suffix in (".md", ".markdown")
    ]
    if more:  # the other real newsletters, when ../shared is present
        stats = measure(lambda: [_parse_any(d, p) for d, p in more], repeat=2, warmup=0)
        report(
            f"parse {len(more)} issues of 7 more newsletters",
            stats,
            f"({stats['median_ms'] / len(more):.2f} ms/issue)",
        )


if __name__ == "__main__":
    main()
