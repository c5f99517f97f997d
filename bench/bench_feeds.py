"""Benchmark: building every feed (whole + per section, Atom + RSS) from all issues.

Run: python bench/bench_feeds.py
Measures a cold build (empty feed state and output directory) and an unchanged
rebuild (state present, nothing to write), parsing included.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from common import issue_files, measure, report
from digest.config import config_from_mapping
from digest.pipeline import build_feeds_now


def main() -> None:
    files = issue_files()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "issues").mkdir()
        for path in files:
            shutil.copy(path, root / "issues")
        config = config_from_mapping(
            {
                "site": {"title": "简报", "base_url": "https://example.org/", "timezone": "Asia/Shanghai"},
                "paths": {"issues": "issues", "feeds": "feeds", "state": "state"},
                "feeds": {"limit": 1000},
            },
            root / "digest.toml",
        )
        now = dt.datetime(2026, 11, 22, tzinfo=config.site.timezone)
        build_feeds_now(config, now)  # warm imports

        def cold() -> None:
            shutil.rmtree(root / "feeds", ignore_errors=True)
            shutil.rmtree(root / "state", ignore_errors=True)
            build_feeds_now(config, now)

        build = build_feeds_now(config, now)
        assert not build.written, "an unchanged rebuild must write nothing"
        report(
            f"feeds, cold build ({len(files)} issues, {build.entries} entries)",
            measure(cold, repeat=10, warmup=1),
        )
        report(
            "feeds, unchanged rebuild (writes nothing)",
            measure(lambda: build_feeds_now(config, now), repeat=10, warmup=1),
        )


if __name__ == "__main__":
    main()
