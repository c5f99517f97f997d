"""A spam filter's local rules (SpamAssassin, no network tests) do not flag the digest.

Skipped when spamassassin is not installed, unless DIGEST_REQUIRE_SPAMASSASSIN=1
(``.ci/run`` installs it and sets that).
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess

import pytest

from conftest import CORPUS_ISSUES, EXAMPLES, NOW
from digest.config import config_from_mapping
from digest.newsletter.parse import ParseOptions, read_issue
from digest.web.preview import render_preview


@pytest.fixture(scope="module")
def spamassassin():
    exe = shutil.which("spamassassin")
    if exe is None:
        if os.environ.get("DIGEST_REQUIRE_SPAMASSASSIN"):
            pytest.fail("spamassassin is not installed: apt-get install spamassassin")
        pytest.skip("spamassassin is not installed")
    return exe


def scores(exe, messages, tmp_path):
    box = mailbox.mbox(tmp_path / "digests.mbox")
    for data in messages:
        box.add(data)
    box.flush()
    with open(tmp_path / "digests.mbox", "rb") as handle:
        result = subprocess.run([exe, "-L", "--mbox"], stdin=handle, capture_output=True, check=True)
    statuses = re.findall(rb"^X-Spam-Status: (\w+), score=(-?[\d.]+)", result.stdout, re.M)
    assert len(statuses) == len(messages)
    return [(flag.decode(), float(score)) for flag, score in statuses]


def messages_for(paths, tmp_path):
    site = {"title": "嵌入式AI简报", "base_url": "https://example.org/report/", "timezone": "Asia/Shanghai"}
    mail = {
        "from": "嵌入式AI简报 <digest@example.org>",
        "unsubscribe_url": "https://example.org/u",
        "unsubscribe_mailto": "unsubscribe@example.org",
        "base_url": "https://example.org/",
    }
    config = config_from_mapping(
        {"site": site, "paths": {"state": "state"}, "email": mail}, tmp_path / "digest.toml"
    )
    options = ParseOptions.from_config(config)
    return [render_preview(config, read_issue(path, options), NOW).eml for path in paths]


def test_example_digests_are_not_spam(spamassassin, tmp_path):
    results = scores(
        spamassassin, messages_for(sorted((EXAMPLES / "issues").glob("*.md")), tmp_path), tmp_path
    )
    assert all(flag == "No" and score < 2.0 for flag, score in results), results


@pytest.mark.corpus
def test_no_real_issue_is_flagged(spamassassin, tmp_path):
    results = scores(spamassassin, messages_for(CORPUS_ISSUES, tmp_path), tmp_path)
    flagged = [
        (p.stem, r) for p, r in zip(CORPUS_ISSUES, results, strict=True) if r[0] != "No" or r[1] >= 2.0
    ]
    assert not flagged
