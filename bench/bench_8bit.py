"""Benchmark: digest's message as base64 (what it sends) against the same message as 8bit MIME.

Run: python bench/bench_8bit.py [--issue PATH] [--messages 10000] [--concurrency 8]

When a server offers 8BITMIME, UTF-8 bodies could go as they are instead of in
base64 (a third more bytes). This measures what that would buy on the wire: the
bytes of each form, and postfix's C client ``smtp-source`` sending each, in one
run, into one ``smtp-sink`` (so the loopback limit of each form, not digest's
own cost). The 8bit form here wraps the HTML's long lines at a space inside a
tag, as a sender would have to (SMTP allows 998 octets a line), and stuffs dots.
"""

from __future__ import annotations

import argparse
import email
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bench_send import CONFIG, free_port, line, measure_process, rendered_message, start_sink

from common import CORPUS, EXAMPLES

MAX_OCTETS = 990  # under SMTP's 998 a line, CRLF excluded


def wrap_line(text: str) -> list[str]:
    """Cut a line longer than SMTP allows at spaces inside tags (where HTML ignores a line break)."""
    out: list[str] = []
    while len(text.encode("utf-8")) > MAX_OCTETS:
        window = text.encode("utf-8")[:MAX_OCTETS].decode("utf-8", "ignore")
        cuts = [m.start() for m in re.finditer(r" (?=[a-z-]+=\")", window)] or [window.rfind(" ")]
        cut = max(cuts[-1], 1)
        out.append(text[:cut])
        text = text[cut + 1 :]
    out.append(text)
    return out


def as_8bit(message: bytes) -> bytes:
    """The same message with each UTF-8 part as 8bit: wrapped lines, CRLF, dots stuffed."""
    parsed = email.message_from_bytes(message)
    head = message.split(b"\r\n\r\n", 1)[0]
    boundary = parsed.get_boundary()
    assert boundary is not None
    pieces = [head + b"\r\n\r\n"]
    for part in parsed.walk():
        if part.get_content_maintype() != "text":
            continue
        body = part.get_payload(decode=True).decode("utf-8")
        lines = [piece for raw in body.splitlines() for piece in wrap_line(raw)]
        lines = ["." + x if x.startswith(".") else x for x in lines]
        pieces.append(
            f'--{boundary}\r\nContent-Type: {part.get_content_type()}; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: 8bit\r\n\r\n".encode()
            + "\r\n".join(lines).encode("utf-8")
            + b"\r\n"
        )
    pieces.append(f"--{boundary}--\r\n".encode())
    data = b"".join(pieces)
    assert max(len(x) for x in data.split(b"\r\n")) <= 998
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issue", default=str(CORPUS / "2022-07-01.md"))
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    issue = Path(args.issue)
    if not issue.is_file():
        issue = sorted(EXAMPLES.glob("*.md"))[-1]
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not Path(source).exists():
        raise SystemExit("needs postfix's smtp-source and smtp-sink (apt-get install postfix)")
    os.environ.setdefault("DIGEST_SECRET", "benchmark-secret-0123456789")
    port = free_port()
    sink, sink_name = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "issues").mkdir()
            shutil.copy(issue, root / "issues")
            (root / "digest.toml").write_text(CONFIG.format(port=port, concurrency=8), encoding="utf-8")
            base64_form = rendered_message(root, issue)
            forms = {"base64 (sent)": base64_form, "8bit": as_8bit(base64_form)}
            print(f"sink: {sink_name}; issue {issue.name}; load average {os.getloadavg()[0]:.1f}")
            rates = {}
            for name, data in forms.items():
                path = root / "message.eml"
                path.write_bytes(data.replace(b"\r\n", b"\n"))
                command = [source, "-s", str(args.concurrency), "-m", str(args.messages), "-f",
                           "digest@example.org", "-t", "reader0@example.com", "-F", str(path),
                           f"127.0.0.1:{port}"]  # fmt: skip
                wall, cpu, peaks, _ = measure_process(command, dict(os.environ))
                note = f"{len(data):,} bytes a message"
                rates[name] = line(name, args.messages, wall, cpu, peaks, note)
            smaller = 1 - len(forms["8bit"]) / len(base64_form)
            faster = rates["8bit"] / rates["base64 (sent)"]
            print(f"8bit: {smaller:.0%} fewer bytes, {faster:.2f}x the messages/second of base64 (C client)")
    finally:
        if sink.stdin:
            sink.stdin.close()
        sink.terminate()
        sink.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
