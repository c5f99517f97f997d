"""How digest reads real newsletters: per newsletter, issues refused or held back and where links went.

Run: python tools/corpus_coverage.py [CORPUS_DIR ...]   (default: ../shared/corpus/more/* and
../shared/corpus/embedded-ai-report). Each newsletter is read as its editor would configure it from
the docs: default options, and ``date_from = "git"`` where a ``dates.tsv`` stands in for git history.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from pathlib import Path

from digest.newsletter.lint import LintReport, lint_file
from digest.newsletter.model import Severity
from digest.newsletter.parse import ParseOptions, path_key

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"


def newsletter_files(folder: Path) -> list[Path]:
    issues = folder / "issues" if (folder / "issues").is_dir() else folder
    return sorted(p for p in issues.rglob("*") if p.suffix in (".md", ".markdown") and p.is_file())


def options_for(folder: Path) -> ParseOptions:
    dates = folder / "dates.tsv"
    if not dates.is_file():
        return ParseOptions()
    commits = {}
    for line in dates.read_text(encoding="utf-8").splitlines():
        name, _, when = line.partition("\t")
        commits[path_key(folder / "issues" / name)] = dt.datetime.fromisoformat(when.strip())
    return ParseOptions(date_from="git", first_commits=commits)


def read_newsletter(folder: Path) -> list[LintReport]:
    options = options_for(folder)
    return [lint_file(path, options) for path in newsletter_files(folder)]


def summarize(name: str, reports: list[LintReport], verbose: int = 0) -> str:
    refused = [r for r in reports if r.issue is None]
    crashed = [r for r in reports if any(f.code == "parse-failure" for f in r.findings)]
    held = [r for r in reports if r.issue is not None and r.blocking]
    readings = [r.reading for r in reports if r.reading is not None]
    links = sum(r.links - len(r.left_out) for r in readings)
    items = sum(r.in_items for r in readings)
    prose = sum(r.in_prose for r in readings)
    left = sum(len(r.left_out) for r in readings)
    missing = sum(len(r.missing) for r in readings)
    coverage = (items + prose) / links if links else 1.0
    line = (
        f"{name:<24} {len(reports):>4} files {len(refused):>3} refused {len(crashed):>2} tracebacks "
        f"{len(held):>3} held  links {links:>6}: items {items:>6} prose {prose:>5} left-out {left:>4} "
        f"missing {missing:>4}  coverage {coverage:7.2%}"
    )
    if verbose:
        codes = Counter(
            f.code for r in reports for f in r.findings if f.severity in (Severity.ERROR, Severity.FATAL)
        )
        line += f"\n    errors/fatal: {dict(codes.most_common())}"
        for report in reports:
            reading = report.reading
            if reading is not None and reading.missing and verbose > 1:
                line += f"\n    {report.path}: missing {list(reading.missing)[:3]}"
    return line


def main(argv: list[str]) -> int:
    verbose = argv.count("-v")
    folders = [Path(a) for a in argv if a != "-v"]
    if not folders:
        folders = sorted(p for p in (SHARED / "more").iterdir() if p.is_dir())
        folders.append(SHARED / "embedded-ai-report")
    for folder in folders:
        print(summarize(folder.name, read_newsletter(folder), verbose), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
