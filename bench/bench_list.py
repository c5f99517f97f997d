"""Benchmark: what a change to a large subscriber list costs, this code against another checkout's.

Run: python bench/bench_list.py [--lines 200000 1000000] [--only check changes send]
     [--before DIR] [--send-limit 300]

``--before DIR`` also runs every measure with the ``digest`` package found in DIR
(e.g. ``git archive REV digest templates | tar -x -C /tmp/digest-before``), side by side.
Each measure runs in its own process on a list generated on disk:

* check: a sending process checks a reader's status right before their message,
  once after each of 20 unsubscribes journaled meanwhile (``Recipients.still_active``);
  ms per check (at most a minute of them), and the first check of the round (which
  reads the statuses).
* changes: 4,000 status changes one after another as bounce reports make them
  (``set_statuses`` per report) into one journal: the total, and ms per change
  for the first and the last 500.
* send: ``digest send`` of an issue to the 2,000 active readers of the list (the
  others unsubscribed) through an aiosmtpd sink, while another process unsubscribes
  a reader every 0.25 s; wall seconds (a run over ``--send-limit`` seconds is stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

KNOWN = {"news", "papers", "projects", "blogs", "apps"}
ACTIVE = 2000


def generate(path: Path, lines: int, active: int) -> None:
    """``lines`` readers, ``active`` of them (spread over the list) active, the others unsubscribed."""
    step = max(1, lines // active)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,sections,status,since\n")
        for n in range(lines):
            status = "active" if n % step == 0 and n // step < active else "unsubscribed"
            handle.write(f"reader{n}@example.org,读者{n},,{status},2026-01-01\n")


def reader(n: int) -> str:
    return f"reader{n}@example.org"


def active_reader(n: int, lines: int) -> str:
    """The ``n``-th active reader of a list made by :func:`generate` (a change to it changes the list)."""
    return reader(max(1, lines // ACTIVE) * (n % ACTIVE))


def measure_check(path: Path, lines: int) -> dict[str, object]:
    from digest.send.recipients import Recipients
    from digest.subscribers.changes import fold_journal, set_status
    from digest.subscribers.model import Subscriber

    fold_journal(path, KNOWN)  # as the start of a send leaves it: index built, journal empty
    check = Recipients(path, KNOWN, set(), path.with_name("snapshot"))
    someone = Subscriber(active_reader(0, lines), "", frozenset(), "active", "", 0)
    start = time.perf_counter()
    check.still_active(someone)
    first = time.perf_counter() - start
    samples: list[float] = []
    spent = time.perf_counter()
    for n in range(20):
        if samples and time.perf_counter() - spent > 60:  # enough to tell seconds from microseconds
            break
        set_status(path, KNOWN, active_reader(ACTIVE // 2 + n, lines), "unsubscribed")
        start = time.perf_counter()
        check.still_active(someone)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "first_s": first,
        "median_ms": samples[len(samples) // 2],
        "max_ms": samples[-1],
        "checks": len(samples),
    }


def measure_changes(path: Path, lines: int) -> dict[str, object]:
    from digest.subscribers.changes import fold_journal, set_statuses

    fold_journal(path, KNOWN)
    times = []
    start = time.perf_counter()
    for n in range(4000):
        one = time.perf_counter()
        set_statuses(path, KNOWN, {reader((n * 37) % lines): "bounced"})  # each one a change
        times.append((time.perf_counter() - one) * 1000)
    total = time.perf_counter() - start
    return {"total_s": total, "first_ms": sum(times[:500]) / 500, "last_ms": sum(times[-500:]) / 500}


UNSUBSCRIBER = """
import sys, time
from pathlib import Path
from digest.errors import DigestError
from digest.subscribers.changes import set_status
path, lines, active, stop = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
n = 0
known = {"news", "papers", "projects", "blogs", "apps"}
while not stop.exists() and path.exists():  # active readers, from the end of the list (mostly not mailed yet)
    try:
        set_status(path, known, f"reader{max(1, lines // active) * (active - 1 - n % active)}@example.org",
                   "unsubscribed")
    except DigestError as exc:  # the list busy for longer than a change waits: try the next one
        print(exc, file=sys.stderr)
    n += 1
    time.sleep(0.25)
print(n)
"""


def measure_send(path: Path, lines: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "tests"))
    import shutil

    from digest.config import load_config
    from digest.newsletter.catalog import load_issue
    from digest.send.delivery import send_issue
    from digest.subscribers.changes import fold_journal
    from smtpserver import running_server

    fold_journal(path, KNOWN)  # the index built, as the last send or `digest subscribers` leaves it
    site = path.parent
    (site / "issues").mkdir()
    shutil.copy(ROOT / "examples" / "issues" / "2026-11-01.md", site / "issues")
    stop = site / "stop"
    with running_server() as (controller, _):
        (site / "digest.toml").write_text(
            '[site]\ntitle = "Bench"\nbase_url = "https://news.example.org/"\ntimezone = "UTC"\n'
            '[paths]\nissues = "issues"\nstate = "state"\nsubscribers = "subscribers.csv"\n'
            f'[email]\nfrom = "Bench <digest@news.example.org>"\ntransport = "smtp://127.0.0.1:{controller.port}"\n'
            'unsubscribe_url = "https://news.example.org/unsubscribe"\n',
            encoding="utf-8",
        )
        config = load_config(site / "digest.toml")
        issue = load_issue(config, "2026-11-01")
        import datetime as dt

        now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
        unsubscriber = subprocess.Popen(
            [sys.executable, "-c", UNSUBSCRIBER, str(path), str(lines), str(ACTIVE), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        start = time.perf_counter()
        try:
            report = send_issue(config, issue, now, progress=False)
        finally:
            stop.write_text("")
            changes = int(unsubscriber.communicate()[0] or 0)
        seconds = time.perf_counter() - start
    return {"send_s": seconds, "sent": report.sent, "changes": changes, "processes": report.processes}


MEASURES = {"check": measure_check, "changes": measure_changes, "send": measure_send}


def run(measure: str, lines: int, code: Path | None, limit: float) -> dict[str, object] | None:
    with tempfile.TemporaryDirectory() as tmp:  # on disk (ext4), so fsync costs what it costs
        path = Path(tmp) / "subscribers.csv"
        generate(path, lines, ACTIVE)
        env = dict(os.environ)
        if code is not None:
            env["PYTHONPATH"] = str(code)
        command = [sys.executable, __file__, "--child", measure, "--list", str(path), "--lines", str(lines)]
        try:
            output = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
                timeout=limit if measure == "send" else None,
            )
        except subprocess.TimeoutExpired:
            return None
        if output.returncode:
            raise SystemExit(output.stderr)
        return json.loads(output.stdout.splitlines()[-1])


def describe(measure: str, result: dict[str, object] | None, limit: float) -> str:
    if result is None:
        return f"over {limit:.0f} s (stopped)"
    if measure == "check":
        return (
            f"{result['median_ms']:.2f} ms per check after a change (max {result['max_ms']:.2f} ms, "
            f"{result['checks']} changes); "
            f"first check of the round {result['first_s']:.2f} s"
        )
    if measure == "changes":
        return (
            f"4,000 changes in {result['total_s']:.1f} s "
            f"({result['first_ms']:.1f} ms each for the first 500, "
            f"{result['last_ms']:.1f} ms for the last 500)"
        )
    return (
        f"{result['sent']} mailed in {result['send_s']:.1f} s by {result['processes']} process(es), "
        f"{result['changes']} unsubscribes meanwhile"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--only", nargs="+", choices=list(MEASURES), default=list(MEASURES))
    parser.add_argument("--before", type=Path, help="a folder holding another checkout's digest package")
    parser.add_argument("--send-limit", type=float, default=300.0)
    parser.add_argument("--child", choices=list(MEASURES))
    parser.add_argument("--list", type=Path)
    args = parser.parse_args()
    if args.child:
        result = MEASURES[args.child](args.list, args.lines[0])
        print(json.dumps(result))
        return
    codes = [("after", None)] + ([("before", args.before.resolve())] if args.before else [])
    for lines in args.lines:
        for measure in args.only:
            for name, code in codes:
                result = run(measure, lines, code, args.send_limit)
                print(
                    f"{lines:>9,} lines  {measure:<8} {name:<7} {describe(measure, result, args.send_limit)}"
                )


if __name__ == "__main__":
    main()
