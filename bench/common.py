"""Helpers shared by the benchmarks: where the data is, and how to report a timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "embedded-ai-report"
EXAMPLES = ROOT / "examples" / "issues"


def byte_compile() -> None:
    """Compile digest's modules once, as ``pip install`` does.

    An editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile
    every module on every start, a cost no installed copy pays.
    """
    import compileall

    compileall.compile_dir(ROOT / "digest", quiet=1)


def issue_files() -> list[Path]:
    """The real issues when ../shared is present, else the bundled examples."""
    files = sorted(CORPUS.glob("*.md"))
    return files or sorted(EXAMPLES.glob("*.md"))


def measure(fn: Callable[[], object], *, repeat: int = 30, warmup: int = 3) -> dict[str, float]:
    """Run ``fn`` ``repeat`` times after ``warmup`` runs; times in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        "min_ms": samples[0],
    }


def report(name: str, stats: dict[str, float], extra: str = "") -> None:
    print(
        f"{name:<44} median {stats['median_ms']:8.2f} ms   p95 {stats['p95_ms']:8.2f} ms"
        f"   min {stats['min_ms']:8.2f} ms {extra}"
    )
