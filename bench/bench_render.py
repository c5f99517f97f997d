"""Benchmark: rendering the email digest, per issue and per personalised message.

Run: python bench/bench_render.py

"Per issue" is jinja2 -> MJML -> minified HTML plus the text part, once per
variant (what a send pays once). "Per message" is what a send pays for every
subscriber: filling in the per-subscriber fields and building the whole MIME
message (headers, tokens, base64 parts). The naive way, an EmailMessage built
per recipient, is measured next to it.
"""

from __future__ import annotations

import email.utils
import statistics
import time
from email.message import EmailMessage

from common import ROOT, issue_files, measure
from digest.config import config_from_mapping
from digest.mail.message import MessageFactory
from digest.mail.render import DigestRenderer
from digest.newsletter.parse import ParseOptions, parse_issue


def main() -> None:
    site = {"title": "嵌入式AI简报", "base_url": "https://example.org/report/", "timezone": "Asia/Shanghai"}
    mail = {
        "from": "嵌入式AI简报 <digest@example.org>",
        "unsubscribe_url": "https://example.org/u",
        "unsubscribe_mailto": "u@example.org",
        "base_url": "https://example.org/",
    }
    config = config_from_mapping({"site": site, "email": mail}, ROOT / "digest.toml")
    options = ParseOptions.from_config(config)
    issues = [parse_issue(p.read_bytes(), p, options) for p in issue_files()]
    DigestRenderer.for_issue(issues[0], config).variant()  # warm up
    per_issue = []
    for issue in issues:
        start = time.perf_counter()
        DigestRenderer.for_issue(issue, config).variant()
        per_issue.append((time.perf_counter() - start) * 1000)
    per_issue.sort()
    median = statistics.median(per_issue)
    label = "render one issue (MJML compile + text part)"
    print(f"{label:<44} median {median:8.2f} ms   max {per_issue[-1]:8.2f} ms   over {len(issues)} issues")
    largest = max(issues, key=lambda i: len(i.items))
    renderer = DigestRenderer.for_issue(largest, config)
    digest = renderer.variant()
    factory = MessageFactory(
        largest, config, b"benchmark-secret-0123456789", email.utils.format_datetime(email.utils.localtime())
    )
    counter = iter(range(10**9))

    def one_message() -> None:
        n = next(counter)
        factory.build(f"reader{n}@example.com", f"读者{n}", digest)

    def thousand() -> None:
        for _ in range(1000):
            one_message()

    per_message = measure(thousand, repeat=5, warmup=1)["median_ms"]  # ms per 1,000 = µs each
    label = "personalised message (fields + MIME + base64)"
    print(f"{label:<44} median {per_message:8.1f} µs   ({largest.stem})")
    html, text = digest.personalise({"email": "a@example.com"})

    def naive() -> None:
        for n in range(100):
            message = EmailMessage()
            message["From"] = "嵌入式AI简报 <digest@example.org>"
            message["To"] = f"reader{n}@example.com"
            message["Subject"] = digest.subject
            message.set_content(text)
            message.add_alternative(html, subtype="html")
            message.as_bytes()

    naive_us = measure(naive, repeat=5, warmup=1)["median_ms"] * 10  # ms per 100 -> µs each
    print(f"{'naive EmailMessage per recipient':<44} median {naive_us:8.1f} µs")


if __name__ == "__main__":
    main()
