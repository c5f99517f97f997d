"""Benchmark: send one real-sized issue to N generated subscribers through a local SMTP sink.

Run: python bench/bench_send.py [--subscribers 10000] [--issue PATH] [--concurrency 8] [--repeat 3]

The sink is postfix's ``smtp-sink`` (a C program, from Debian's postfix package)
when it is installed, else an aiosmtpd sink in its own process. Into the same
sink, in one run: ``digest send``; postfix's C client ``smtp-source`` sending
digest's own rendered message at its best (``-d``: connections reused, as digest
reuses them, and as many of them as digest opens); and a naive baseline (stdlib
smtplib, one connection and an ``EmailMessage`` per message). Each runs in its
own processes; the peak RSS of every one of them is read from /proc. With
``--repeat N`` digest and the C client run N times each, in turn, and the ratios
are of their medians: digest's whole process (start-up included) and digest once
started (its own rate, from its summary line) over the C client's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import CORPUS, EXAMPLES, byte_compile, issue_files

SINK_SCRIPT = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"
c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"""

BASELINE_SCRIPT = """
import smtplib, sys, csv
from email.message import EmailMessage
port, listing, html_file, text_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
html = open(html_file, encoding="utf-8").read()
text = open(text_file, encoding="utf-8").read()
sent = 0
with open(listing, encoding="utf-8") as handle:
    for row in csv.DictReader(handle):
        message = EmailMessage()
        message["From"] = "简报 <digest@example.org>"
        message["To"] = row["email"]
        message["Subject"] = "嵌入式AI简报 (2022-07-01)：ARM新架构/MegPeak/ncnn ViT int8"
        message.set_content(text.replace("%%EMAIL%%", row["email"]))
        message.add_alternative(html.replace("%%EMAIL%%", row["email"]), subtype="html")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
        sent += 1
print(sent)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink(port: int) -> tuple[subprocess.Popen[bytes], str]:
    sink = shutil.which("smtp-sink") or (
        "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None
    )
    if sink:
        process = subprocess.Popen(
            [sink, "-u", "root", f"127.0.0.1:{port}", "1024"], stdout=subprocess.DEVNULL
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        return process, "postfix smtp-sink"
    process = subprocess.Popen(
        [sys.executable, "-c", SINK_SCRIPT, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    process.stdout.readline()
    return process, "aiosmtpd sink (install postfix for smtp-sink)"


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo.extend(int(c) for c in handle.read().split())
        except OSError:
            pass
    return found


def _hwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def measure_process(command: list[str], env: dict[str, str]) -> tuple[float, float, list[float], str]:
    """Wall seconds, CPU seconds, the peak RSS (MB) of each process of the tree, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    peaks: dict[int, float] = {}

    def watch() -> None:
        while process.poll() is None:
            for pid in _descendants(process.pid):
                if (hwm := _hwm_mb(pid)) is not None:
                    peaks[pid] = max(peaks.get(pid, 0.0), hwm)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = process.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if process.returncode:
        raise SystemExit(f"{command[:4]} failed with status {process.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peaks.setdefault(process.pid, after.ru_maxrss / 1024)
    return wall, cpu, [peaks[p] for p in sorted(peaks)], out


CONFIG = """
[site]
title = "嵌入式AI简报"
base_url = "https://example.org/report/"
timezone = "Asia/Shanghai"
[paths]
issues = "issues"
state = "state"
subscribers = "subscribers.csv"
[email]
from = "嵌入式AI简报 <digest@example.org>"
transport = "smtp://127.0.0.1:{port}"
starttls = "off"
unsubscribe_url = "https://example.org/unsubscribe"
unsubscribe_mailto = "unsubscribe@example.org"
base_url = "https://example.org/"
concurrency = {concurrency}
max_per_connection = 1000
"""


def rendered_message(root: Path, issue: Path) -> bytes:
    """digest's own message for the first subscriber, as it goes on the wire (CRLF)."""
    from digest.config import load_config
    from digest.mail.message import MessageFactory
    from digest.mail.render import DigestRenderer
    from digest.mail.tokens import load_secret
    from digest.newsletter.parse import read_issue

    config = load_config(root / "digest.toml")
    parsed = read_issue(root / "issues" / issue.name)
    date = "Tue, 01 Dec 2026 00:00:00 +0000"
    factory = MessageFactory(parsed, config, load_secret(config.paths.state), date)
    variant = DigestRenderer.for_issue(parsed, config).variant()
    assert variant is not None
    return factory.build("reader0@example.com", "读者0", variant).data


def line(name: str, count: int, wall: float, cpu: float, peaks: list[float], note: str = "") -> float:
    rate = count / wall
    rss = ", ".join(f"{p:.0f}" for p in peaks)
    print(
        f"{name:<16} {count:>8} msgs {rate:8.0f} msg/s  wall {wall:6.1f}s  "
        f"cpu {cpu * 1000 / count:5.2f} ms/msg  peak RSS MB [{rss}]  {note}"
    )
    return rate


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--baseline", type=int, default=2000, help="messages for the naive baseline")
    parser.add_argument(
        "--asyncio", action="store_true", help="also send on asyncio's own loop (DIGEST_UVLOOP=0)"
    )
    parser.add_argument("--source", type=int, default=20_000, help="messages for smtp-source (at most N)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="digest and smtp-source N times each, in turn; medians compared"
    )
    parser.add_argument(
        "--issue",
        default=str(CORPUS / "2022-07-01.md"),
        help="an issue file (default: the largest real issue, else the bundled example)",
    )
    return parser.parse_args()


def smtp_source(root: Path, port: int, count: int, concurrency: int, env: dict[str, str]) -> float | None:
    """postfix's C client sending digest's own message ``count`` times; its rate (None: not installed)."""
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not Path(source).exists():
        return None
    command = [source, "-d", "-s", str(concurrency), "-m", str(count), "-f", "digest@example.org",
               "-t", "reader0@example.com", "-F", str(root / "message.eml"), f"127.0.0.1:{port}"]  # fmt: skip
    wall, cpu, peaks, _ = measure_process(command, env)
    return line("smtp-source (C)", count, wall, cpu, peaks, f"(-d -s {concurrency}: connections reused)")


def digest_send(
    root: Path, send: list[str], env: dict[str, str], count: int, name: str
) -> tuple[float, float]:
    """One ``digest send`` of the whole list, from a fresh ledger; its rate whole, and once started."""
    shutil.rmtree(root / "state" / "ledger", ignore_errors=True)
    wall, cpu, peaks, out = measure_process(send, env)
    sending = out.rsplit("(", 1)[-1].split(")")[0]  # the send's own rate, start-up excluded
    return line(name, count, wall, cpu, peaks, f"({sending} once started)"), float(sending.split()[0])


def naive(root: Path, port: int, issue: Path, count: int, env: dict[str, str]) -> float:
    previews = root / "var" / "previews" / issue.stem
    with open(root / "baseline.csv", "w", encoding="utf-8") as handle:
        handle.write("email\n" + "".join(f"reader{n}@example.com\n" for n in range(count)))
    command = [sys.executable, "-c", BASELINE_SCRIPT, str(port), str(root / "baseline.csv"),
               str(previews / "email.html"), str(previews / "email.txt")]  # fmt: skip
    wall, cpu, peaks, _ = measure_process(command, env)
    return line("naive smtplib", count, wall, cpu, peaks, "(a connection per message)")


def prepare(root: Path, issue: Path, args: argparse.Namespace, port: int, env: dict[str, str]) -> bytes:
    """The newsletter, its list of generated subscribers and its preview; digest's own message."""
    (root / "issues").mkdir()
    shutil.copy(issue, root / "issues")
    config_text = CONFIG.format(port=port, concurrency=args.concurrency)
    (root / "digest.toml").write_text(config_text, encoding="utf-8")
    with open(root / "subscribers.csv", "w", encoding="utf-8") as handle:
        handle.write("email,name,sections,status,since\n")
        for n in range(args.subscribers):
            handle.write(f"reader{n}@example.com,读者{n},,active,2026-01-01\n")
    command = [sys.executable, "-m", "digest", "preview", issue.stem, "--config", str(root / "digest.toml")]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    message = rendered_message(root, issue)
    (root / "message.eml").write_bytes(message.replace(b"\r\n", b"\n"))
    return message


def main() -> None:
    args = parse_args()
    byte_compile()
    issue = Path(args.issue)
    if not issue.is_file():
        issue = next((p for p in issue_files() + sorted(EXAMPLES.glob("*.md")) if p.stem == issue.stem), None)
        issue = issue or sorted(EXAMPLES.glob("*.md"))[-1]
    port = free_port()
    sink, sink_name = start_sink(port)
    env = {**os.environ, "DIGEST_SECRET": "benchmark-secret-0123456789"}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            message = prepare(root, issue, args, port, env)
            print(
                f"sink: {sink_name}; issue {issue.name}: {len(message):,} bytes per message on the wire; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            send = [sys.executable, "-m", "digest", "send", issue.stem, "--no-progress", "--force",
                    "--config", str(root / "digest.toml")]  # fmt: skip
            if args.asyncio:  # the same send on asyncio's own event loop
                digest_send(root, send, {**env, "DIGEST_UVLOOP": "0"}, args.subscribers, "digest (asyncio)")
            whole, started, theirs = [], [], []
            for _ in range(args.repeat):  # in turn, so a change in the machine's load falls on both
                rate, once_started = digest_send(root, send, env, args.subscribers, "digest send")
                whole.append(rate)
                started.append(once_started)
                c_rate = smtp_source(root, port, min(args.source, args.subscribers), args.concurrency, env)
                theirs += [c_rate] if c_rate else []
            baseline = naive(root, port, issue, args.baseline, env)
            mine = statistics.median(whole)
            c_part = ""
            if theirs:
                c_median = statistics.median(theirs)
                c_part = (
                    f"digest/C (-d) {mine / c_median:.2f} whole process, "
                    f"{statistics.median(started) / c_median:.2f} once started; "
                )
            runs = f" (medians of {args.repeat} runs each, in turn)" if args.repeat > 1 else ""
            print(f"{c_part}digest/naive {mine / baseline:.1f}x{runs}; load average {os.getloadavg()[0]:.1f}")
    finally:
        if sink.stdin:
            sink.stdin.close()
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
