"""Bounces produced by a real postfix on 127.0.0.1, read back from its Maildir by `digest run`."""

from __future__ import annotations

import shutil

from mailservers import running_postfix, wait_for

from conftest import EXAMPLES, run_digest, write_subscribers
from servehelpers import status_of

DOMAIN = "lists.example.org"
LISTED = [
    ("reader1@lists.example.org", "甲", "", "active", "2026-09-01"),
    ("ghost1@lists.example.org", "乙", "", "active", "2026-09-01"),
    ("reader2@lists.example.org", "丙", "", "active", "2026-09-01"),
    ("ghost2@lists.example.org", "丁", "", "active", "2026-09-01"),
    ("left@lists.example.org", "戊", "", "unsubscribed", "2026-09-01"),
]


def _site_for(site, postfix, extra: str = "") -> None:
    site.write_config(
        "[email]\n"
        f'from = "简报 <news@{DOMAIN}>"\n'
        f'transport = "smtp://127.0.0.1:{postfix.port}"\n'
        'starttls = "off"\n'
        f'return_path = "bounces+{{token}}@{DOMAIN}"\n'
        f'unsubscribe_mailto = "unsubscribe@{DOMAIN}"\n'
        'base_url = "https://news.example.org/"\n'
        "retry_base = 0.01\n"
        '[release]\nmode = "auto"\nsettle_minutes = 0\nsince = 2026-11-01\n'
        f'[bounces]\nmailbox = "maildir:{postfix.maildir("bounces")}"\n' + extra
    )
    shutil.copy(EXAMPLES / "issues" / "2026-11-01.md", site.issues)
    write_subscribers(site.root / "subscribers.csv", LISTED)


def test_a_send_through_postfix_marks_exactly_the_missing_addresses_bounced(site, run_env):
    with running_postfix(DOMAIN, ["reader1", "reader2", "bounces", "unsubscribe"]) as postfix:
        _site_for(site, postfix)
        run_env["DIGEST_SECRET"] = "a-test-secret-of-enough-length"
        before = (site.root / "subscribers.csv").read_text()
        first = run_digest(["run", "--config", str(site.config_path)], run_env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "sent 4" in first.stdout  # postfix accepted all four: the relay says nothing yet
        assert (site.root / "subscribers.csv").read_text() == before
        bounces = postfix.maildir("bounces") / "new"
        wait_for(lambda: bounces.is_dir() and len(list(bounces.iterdir())) == 2, "two DSNs from postfix")
        wait_for(lambda: len(list((postfix.maildir("reader1") / "new").iterdir())) == 1, "reader1's copy")
        dsn = next(bounces.iterdir()).read_text(errors="replace")
        assert "message/delivery-status" in dsn and "Status: 5.1.1" in dsn

        second = run_digest(["run", "--config", str(site.config_path)], run_env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("is now bounced (no such mailbox)") == 2, second.stdout
        assert [status_of(site, row[0]) for row in LISTED] == [
            "active", "bounced", "active", "bounced", "unsubscribed"
        ]  # fmt: skip
        assert not list(bounces.iterdir())  # both moved aside, flagged Seen
        assert all(name.name.endswith(":2,S") for name in (postfix.maildir("bounces") / "cur").iterdir())

        third = run_digest(["run", "--config", str(site.config_path)], run_env)
        assert "bounces:" not in third.stdout  # nothing is read, or counted, twice


def test_the_return_path_names_the_recipient_even_when_the_report_does_not(site, run_env):
    """postfix's DSN for an alias names the alias; the VERP token still finds the subscriber."""
    with running_postfix(DOMAIN, ["reader1", "bounces"]) as postfix:
        _site_for(site, postfix)
        write_subscribers(
            site.root / "subscribers.csv", [("forwarded@lists.example.org", "甲", "", "active", "2026-09-01")]
        )
        (postfix.conf / "main.cf").open("a").write(
            f"virtual_alias_maps = texthash:{postfix.conf / 'aliases'}\n"
        )
        (postfix.conf / "aliases").write_text(f"forwarded@{DOMAIN} gone-elsewhere@{DOMAIN}\n")
        postfix.postfix("reload")
        run_env["DIGEST_SECRET"] = "a-test-secret-of-enough-length"
        assert run_digest(["send", "2026-11-01", "--config", str(site.config_path)], run_env).returncode == 0
        bounces = postfix.maildir("bounces") / "new"
        wait_for(lambda: bounces.is_dir() and any(bounces.iterdir()), "a DSN from postfix")
        dry = run_digest(["bounces", "--dry-run", "--config", str(site.config_path)], run_env)
        assert "return path names forwarded@lists.example.org" in dry.stdout, dry.stdout + dry.stderr
        assert "forwarded@lists.example.org would be bounced" in dry.stdout
        assert status_of(site, "forwarded@lists.example.org") == "active"  # a dry run changes nothing
        assert any(bounces.iterdir())
        real = run_digest(["bounces", "--config", str(site.config_path)], run_env)
        assert real.returncode == 0, real.stderr
        assert status_of(site, "forwarded@lists.example.org") == "bounced"
