"""Benchmark: `digest run` when nothing changed, against `python -c pass`.

Run: python bench/bench_idle.py [--runs 50]

Sets up the bundled example in a temporary directory, runs `digest run` twice
(the first mails, the second confirms nothing is left), then times the idle
pass. Uses hyperfine when it is installed (Debian's hyperfine), else its own
loop of subprocess runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, byte_compile


def timed(command: list[str], runs: int, cwd: Path, env: dict[str, str]) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    byte_compile()
    digest = str(Path(sys.executable).parent / "digest")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(ROOT / "digest.toml", root)
        shutil.copytree(ROOT / "examples", root / "examples")
        (root / "feeds").mkdir()
        env = {**os.environ, "XDG_CACHE_HOME": str(root / "cache")}
        env.pop("DIGEST_CONFIG", None)
        for _ in range(2):
            subprocess.run([digest, "run"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        idle = [digest, "run", "--quiet"]
        baseline = [sys.executable, "-c", "pass"]
        if shutil.which("hyperfine"):
            export = root / "hyperfine.json"
            subprocess.run(
                ["hyperfine", "-N", "--warmup", "5", "--runs", str(args.runs), "--export-json", str(export),
                 " ".join(baseline), " ".join(idle)],
                cwd=root, env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            results = json.loads(export.read_text())["results"]
            base_ms, idle_ms = (r["median"] * 1000 for r in results)
            tool = "hyperfine"
        else:
            base_ms, idle_ms = timed(baseline, args.runs, root, env), timed(idle, args.runs, root, env)
            tool = "subprocess loop"
        print(f"python -c pass        median {base_ms:6.1f} ms")
        ratio = idle_ms / base_ms
        runs = f"{tool}, {args.runs} runs"
        print(f"digest run (idle)     median {idle_ms:6.1f} ms   ratio {ratio:.2f}x   ({runs})")


if __name__ == "__main__":
    main()
