"""Benchmark: send one real-sized issue to N generated subscribers through a local SMTP sink.

Run: python bench/bench_send.py [--subscribers 10000] [--concurrency 8]

The sink is postfix's ``smtp-sink`` (a C program, from Debian's postfix package)
when it is installed, else an aiosmtpd sink in its own process. Next to
``digest send`` the same run measures a naive baseline: stdlib smtplib, one
connection per message, an ``EmailMessage`` built per recipient. Each side runs
in its own process, so CPU time and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import EXAMPLES, issue_files

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


def measure_process(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process (and its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, check=True, env=env, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--baseline", type=int, default=2000, help="messages for the naive baseline")
    parser.add_argument(
        "--issue", default="2022-07-01", help="issue stem (a real issue when ../shared is there)"
    )
    args = parser.parse_args()

    candidates = issue_files() + sorted(EXAMPLES.glob("*.md"))  # the examples too, for --issue 2026-11-01
    issue = next((p for p in candidates if p.stem == args.issue), candidates[-1])
    port = free_port()
    sink, sink_name = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "issues").mkdir()
            shutil.copy(issue, root / "issues")
            (root / "digest.toml").write_text(
                textwrap.dedent(f"""
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
                concurrency = {args.concurrency}
                max_per_connection = 1000
                """),
                encoding="utf-8",
            )
            with open(root / "subscribers.csv", "w", encoding="utf-8") as handle:
                handle.write("email,name,sections,status,since\n")
                for n in range(args.subscribers):
                    handle.write(f"reader{n}@example.com,读者{n},,active,2026-01-01\n")
            env = {**os.environ, "DIGEST_SECRET": "benchmark-secret-0123456789"}
            digest = [sys.executable, "-m", "digest"]
            config = ["--config", str(root / "digest.toml")]
            subprocess.run(
                [*digest, "preview", issue.stem, *config], check=True, env=env, stdout=subprocess.DEVNULL
            )
            eml_html = root / "var" / "previews" / issue.stem / "email.html"
            html_size = eml_html.stat().st_size
            wall, cpu, rss, out = measure_process(
                [*digest, "send", issue.stem, "--no-progress", "--force", *config], env
            )
            sending = out.rsplit("(", 1)[-1].split(")")[0]  # the send's own rate, start-up excluded
            print(f"sink: {sink_name}; issue {issue.name}, HTML {html_size / 1024:.0f} KB per message")
            print(
                f"digest send      {args.subscribers:>7} msgs  {args.subscribers / wall:8.0f} msg/s  "
                f"wall {wall:6.1f}s  cpu {cpu:6.1f}s  peak RSS {rss:6.1f} MB  "
                f"(concurrency {args.concurrency}; {sending} once started)"
            )
            text_file = root / "var" / "previews" / issue.stem / "email.txt"
            with open(root / "baseline.csv", "w", encoding="utf-8") as handle:
                handle.write("email\n" + "".join(f"reader{n}@example.com\n" for n in range(args.baseline)))
            wall, cpu, rss, _ = measure_process(
                [
                    sys.executable,
                    "-c",
                    BASELINE_SCRIPT,
                    str(port),
                    str(root / "baseline.csv"),
                    str(eml_html),
                    str(text_file),
                ],
                env,
            )
            print(
                f"naive baseline   {args.baseline:>7} msgs  {args.baseline / wall:8.0f} msg/s  "
                f"wall {wall:6.1f}s  cpu {cpu:6.1f}s  (smtplib, a connection and an EmailMessage per message)"
            )
    finally:
        if sink.stdin:
            sink.stdin.close()
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    main()
