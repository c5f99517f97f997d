"""Mail that comes back, read from a Maildir by `digest bounces` and `digest run`: ARF complaints
(RFC 5965), unsubscribes by mail (RFC 2369 mailto), delivery reports (RFC 3464), auto-replies,
and a reader killed with SIGKILL in the middle.

The original messages inside the reports are the ones `digest send` wrote (to a Maildir
transport), so the tokens and return paths in them are real.
"""

from __future__ import annotations

import contextlib
import email
import os
import signal
import sqlite3
import subprocess
import time
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import EXAMPLES, digest_cmd, run_digest, write_subscribers
from digest.mail.tokens import TokenPayload, make_token
from digest.mail.verp import compact_token
from servehelpers import status_of

SECRET = "a-test-secret-of-enough-length"
READERS = [
    ("li@example.com", "李", "", "active", "2026-09-01"),
    ("han@example.com", "韩", "", "active", "2026-09-01"),
    ("wang@example.net", "王", "", "active", "2026-09-01"),
]


def _mail(site, run_env, mailto: str = "unsubscribe@news.example.org"):
    """A site whose 2026-11-01 issue went to three readers (into sent/), with a bounce Maildir."""
    site.write_config(
        "[email]\n"
        'from = "简报 <news@news.example.org>"\n'
        'transport = "maildir:sent"\n'
        'return_path = "bounces+{token}@news.example.org"\n'
        'unsubscribe_url = "https://news.example.org/unsubscribe"\n'
        f'unsubscribe_mailto = "{mailto}"\n'
        "bounce_after = 2\n"
        '[bounces]\nmailbox = "maildir:bounces"\nsoft_limit = 2\nsoft_days = 30\n'
    )
    (site.issues / "2026-11-01.md").write_bytes((EXAMPLES / "issues" / "2026-11-01.md").read_bytes())
    write_subscribers(site.root / "subscribers.csv", READERS)
    for sub in ("new", "cur", "tmp"):
        (site.root / "bounces" / sub).mkdir(parents=True)
    run_env["DIGEST_SECRET"] = SECRET
    sent = run_digest(["send", "2026-11-01", "--config", str(site.config_path)], run_env)
    assert sent.returncode == 0, sent.stderr
    return site


@pytest.fixture
def mailed(site, run_env):
    return _mail(site, run_env)


def sent_to(site, address: str) -> email.message.Message:
    for path in (site.root / "sent" / "new").iterdir():
        message = email.message_from_bytes(path.read_bytes())
        if message["Delivered-To"] == address:
            return message
    raise AssertionError(f"nothing was sent to {address}")


def recorded_events(site) -> list[dict[str, str]]:
    """Every event in the bounce record, oldest first."""
    with contextlib.closing(sqlite3.connect(site.root / "state" / "bounces.sqlite")) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM events ORDER BY rowid")]


def deliver(site, message, name: str) -> Path:
    path = site.root / "bounces" / "new" / name
    path.write_bytes(message.as_bytes() if hasattr(message, "as_bytes") else message)
    return path


def bounces(site, run_env, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_digest(["bounces", *args, "--config", str(site.config_path)], run_env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def arf_report(
    original: email.message.Message, *, redact: bool, feedback_type: str = "abuse"
) -> MIMEMultipart:
    """An RFC 5965 feedback report as a mailbox provider's feedback loop sends it."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@fbl.example.net"
    report["To"] = "bounces@news.example.org"
    report["Subject"] = "FW: complaint about a message from news.example.org"
    report["Message-ID"] = f"<arf-{redact}-{feedback_type}@fbl.example.net>"
    report.attach(MIMEText("This is an email abuse report for an email message received from IP 192.0.2.1."))
    fields = EmailMessage()
    fields["Feedback-Type"] = feedback_type
    fields["User-Agent"] = "SomeGenerator/1.0"
    fields["Version"] = "1"
    if not redact:
        fields["Original-Rcpt-To"] = original["Delivered-To"]
    part = MIMEMessage(fields, "feedback-report")
    report.attach(part)
    copy = email.message_from_bytes(original.as_bytes())
    if redact:  # feedback loops often hide the reader's address
        del copy["To"], copy["Delivered-To"]
        copy["To"] = "redacted@example.com"
    report.attach(MIMEMessage(copy))
    return report


def test_an_arf_complaint_unsubscribes_its_reader_at_once_and_is_recorded(mailed, run_env):
    deliver(mailed, arf_report(sent_to(mailed, "li@example.com"), redact=False), "1.arf")
    deliver(mailed, arf_report(sent_to(mailed, "han@example.com"), redact=True), "2.arf")
    deliver(
        mailed, arf_report(sent_to(mailed, "wang@example.net"), redact=False, feedback_type="not-spam"), "3"
    )
    result = bounces(mailed, run_env)
    assert status_of(mailed, "li@example.com") == "unsubscribed"
    assert status_of(mailed, "han@example.com") == "unsubscribed"  # found by the signed link in the copy
    assert status_of(mailed, "wang@example.net") == "active"  # not-spam is no complaint
    assert result.stdout.count("is now unsubscribed (complained (spam report))") == 2
    events = recorded_events(mailed)
    complaints = sorted(e["address"] for e in events if e["kind"] == "complaint")
    assert complaints == ["han@example.com", "li@example.com"]
    assert {e["issue"] for e in events} == {"2026-11-01"}
    assert [p.name for p in (mailed.root / "bounces" / "new").iterdir()] == ["3"]  # left for a person
    status = run_digest(["status", "--config", str(mailed.config_path)], run_env).stdout
    assert "退信/投诉" in status.splitlines()[0]  # bounced/complained, in the newsletter's language
    assert status.splitlines()[1].rstrip().endswith("0/2")


def _mail_to_unsubscribe(sender: str, subject: str, to: str = "unsubscribe@news.example.org") -> EmailMessage:
    """What a mail client sends for List-Unsubscribe: <mailto:unsubscribe@...?subject=unsubscribe>."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{abs(hash((sender, subject, to)))}@client.example.com>"
    message.set_content("")
    return message


def _list_unsubscribe_mailto(sent: email.message.Message) -> tuple[str, str]:
    """(address, subject) of the mailto in a message's List-Unsubscribe, as a mail client reads it."""
    mailto = sent["List-Unsubscribe"].split("<mailto:", 1)[1].split(">", 1)[0]
    address, query = mailto.split("?", 1)
    return address, unquote(query.removeprefix("subject="))


def test_a_mailto_unsubscribe_removes_its_reader_and_a_forged_from_nobody(mailed, run_env):
    target, subject = _list_unsubscribe_mailto(sent_to(mailed, "wang@example.net"))
    assert subject.startswith("unsubscribe ")  # the reader's signed token rides in the subject
    deliver(mailed, _mail_to_unsubscribe("王 <wang@example.net>", subject, target), "1")
    deliver(mailed, _mail_to_unsubscribe("stranger@example.org", "unsubscribe"), "2")
    deliver(mailed, _mail_to_unsubscribe("李 <li@example.com>", "unsubscribe", target), "3-forged-from")
    result = bounces(mailed, run_env)
    assert [status_of(mailed, r[0]) for r in READERS] == ["active", "active", "unsubscribed"]
    assert "from li@example.com without digest's token" in result.stdout
    kept = sorted(p.name for p in (mailed.root / "bounces" / "new").iterdir())
    assert kept == ["2", "3-forged-from"]  # left for a person


def test_a_token_in_the_subject_names_the_reader_whoever_sends_it(mailed, run_env):
    token = make_token(SECRET.encode(), TokenPayload("han@example.com", "unsubscribe"))
    deliver(mailed, _mail_to_unsubscribe("old-address@example.org", f"unsubscribe {token}"), "1")
    forged = make_token(b"x" * 32, TokenPayload("li@example.com", "unsubscribe"))
    deliver(mailed, _mail_to_unsubscribe("nobody@example.org", f"unsubscribe {forged}"), "2")
    bounces(mailed, run_env)
    assert [status_of(mailed, r[0]) for r in READERS] == ["active", "unsubscribed", "active"]


def test_a_tokened_mailto_names_its_reader_whoever_sends_it(site, run_env):
    """unsubscribe_mailto = "unsubscribe+{token}@...": each reader's List-Unsubscribe has its own address."""
    mailed = _mail(site, run_env, "unsubscribe+{token}@news.example.org")
    targets = {}
    for address in ("li@example.com", "han@example.com"):
        header = sent_to(mailed, address)["List-Unsubscribe"]
        targets[address] = header.split("<mailto:", 1)[1].split("?", 1)[0]
    assert targets["li@example.com"] != targets["han@example.com"]
    deliver(
        mailed,
        _mail_to_unsubscribe("han.at.work@example.org", "unsubscribe", targets["han@example.com"]),
        "1",
    )
    forged = "unsubscribe+20261101-0123456789abcdef0123@news.example.org"
    deliver(mailed, _mail_to_unsubscribe("mallory@example.org", "unsubscribe", forged), "2")
    result = bounces(mailed, run_env)
    assert [status_of(mailed, r[0]) for r in READERS] == ["active", "unsubscribed", "active"]
    assert "the token in the address" in result.stdout
    assert [p.name for p in (mailed.root / "bounces" / "new").iterdir()] == ["2"]


def _dsn(recipient_header: str, final: str, action: str, status: str, n: int, original: bytes = b"") -> bytes:
    """An RFC 3464 delivery status notification, as a remote MTA returns one (with the original's headers)."""
    returned = b""
    if original:
        headers = original.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        returned = b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers + b"\r\n"
    return (
        (
            "From: MAILER-DAEMON@mx.example.net\r\n"
            f"To: {recipient_header}\r\n"
            "Subject: Delivery Status Notification\r\n"
            f"Message-ID: <dsn-{n}-{final}@mx.example.net>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\n"
            f"Delivery to {final} did not succeed.\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n\r\n"
            f"Final-Recipient: rfc822; {final}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 452 {status} see the status\r\n"
        ).encode()
        + returned
        + b"--b--\r\n"
    )


def test_temporary_failures_bounce_only_after_soft_limit_and_a_message_counts_once(mailed, run_env):
    return_path = sent_to(mailed, "li@example.com")["Return-Path"].strip("<>")
    first = _dsn(return_path, "li@example.com", "delayed", "4.2.2", 1)
    deliver(mailed, first, "1")
    deliver(mailed, first, "1-again")  # the same report delivered twice
    result = bounces(mailed, run_env)
    assert "temporary failure (4.2.2), counted (stays active)" in result.stdout
    assert status_of(mailed, "li@example.com") == "active"
    deliver(mailed, first, "1-once-more")
    bounces(mailed, run_env)
    assert status_of(mailed, "li@example.com") == "active"  # still one report
    deliver(mailed, _dsn(return_path, "li@example.com", "delayed", "4.2.2", 2), "2")
    dry = bounces(mailed, run_env, "--dry-run")
    assert "li@example.com would be bounced (2 temporary failures in 30 days)" in dry.stdout
    assert status_of(mailed, "li@example.com") == "active"
    bounces(mailed, run_env)
    assert [status_of(mailed, r[0]) for r in READERS] == ["bounced", "active", "active"]


def test_a_permanent_failure_counts_once_per_issue_and_only_when_digest_signed_it(mailed, run_env):
    forged = _dsn("bounces@news.example.org", "han@example.com", "failed", "5.2.1", 0)
    deliver(mailed, forged, "forged")  # hand-made, to the plain bounce address: names no one digest mailed
    result = bounces(mailed, run_env)
    assert "carries nothing digest signed" in result.stdout
    original = sent_to(mailed, "han@example.com").as_bytes()
    for n in (1, 2):  # two reports quoting the original: one permanent failure of one issue
        deliver(
            mailed,
            _dsn("bounces@news.example.org", "han@example.com", "failed", "5.2.1", n, original),
            str(n),
        )
        result = bounces(mailed, run_env)
        assert "han@example.com: permanent failure (5.2.1), counted (stays active)" in result.stdout
    assert status_of(mailed, "han@example.com") == "active"  # bounce_after = 2: one issue so far
    assert [(e["address"], e["issue"]) for e in recorded_events(mailed)] == [
        ("han@example.com", "2026-11-01")
    ] * 2
    assert [p.name for p in (mailed.root / "bounces" / "new").iterdir()] == ["forged"]


def test_auto_replies_and_strangers_change_nothing_and_stay_for_a_person(mailed, run_env):
    reply = _mail_to_unsubscribe("li@example.com", "Out of office: back on Monday", "news@news.example.org")
    reply["Auto-Submitted"] = "auto-replied"
    deliver(mailed, reply, "auto")
    deliver(mailed, _mail_to_unsubscribe("li@example.com", "你好", "news@news.example.org"), "hello")
    before = (mailed.root / "subscribers.csv").read_bytes()
    result = bounces(mailed, run_env)
    assert "auto-reply" in result.stdout and "left for a person" in result.stdout
    assert (mailed.root / "subscribers.csv").read_bytes() == before
    assert sorted(p.name for p in (mailed.root / "bounces" / "new").iterdir()) == ["auto", "hello"]


def test_a_reader_killed_mid_mailbox_loses_nothing_and_counts_nothing_twice(mailed, run_env):
    """Two delay reports per reader for 400 listed readers, soft_limit 3: nobody may end up bounced."""
    many = [(f"reader{n}@example.org", "", "", "active", "2026-09-01") for n in range(400)]
    write_subscribers(mailed.root / "subscribers.csv", many)
    mailed.config_path.write_text(mailed.config_path.read_text().replace("soft_limit = 2", "soft_limit = 3"))
    for n, (address, *_) in enumerate(many):
        for k in (1, 2):
            verp = (
                "bounces+"
                + compact_token(SECRET.encode(), "bounce", "2026-11-01", address)
                + "@news.example.org"
            )
            deliver(mailed, _dsn(verp, address, "delayed", "4.4.7", k), f"{n}-{k}")
    new = mailed.root / "bounces" / "new"
    process = subprocess.Popen(
        [*digest_cmd(), "bounces", "--config", str(mailed.config_path)],
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any((mailed.root / "bounces" / "cur").iterdir()) and time.monotonic() < deadline:
        assert process.poll() is None, "digest bounces ended before anything was moved aside"
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    left = len(list(new.iterdir()))
    assert 0 < left < 800, "the kill must land in the middle of the mailbox"
    bounces(mailed, run_env)
    assert not list(new.iterdir())
    assert len(recorded_events(mailed)) == 800
    assert {status_of(mailed, address) for address, *_ in many} == {"active"}


@pytest.mark.parametrize("folder", ["", "Handled"])
def test_an_imap_bounce_box_on_a_real_dovecot(mailed, run_env, tls_ca, folder):
    """The mailbox over IMAPS: handled mail is flagged Seen (or moved to a folder); the rest stays unseen."""
    import imaplib
    import ssl

    from mailservers import running_dovecot

    _ca, cert, ca_file = tls_ca
    with running_dovecot(cert) as dovecot:
        url = f"imaps://{dovecot.user}@127.0.0.1:{dovecot.port}/INBOX"
        text = mailed.config_path.read_text().replace('mailbox = "maildir:bounces"', f'mailbox = "{url}"')
        extra = f'folder = "{folder}"\n' if folder else ""
        mailed.config_path.write_text(text + f'ca_file = "{ca_file}"\n' + extra)
        imap = imaplib.IMAP4_SSL(
            "127.0.0.1", dovecot.port, ssl_context=ssl.create_default_context(cafile=ca_file)
        )
        imap.login(dovecot.user, dovecot.password)
        for message in (
            arf_report(sent_to(mailed, "li@example.com"), redact=True),
            _dsn(
                sent_to(mailed, "han@example.com")["Return-Path"].strip("<>"),
                "han@example.com",
                "failed",
                "5.1.1",
                1,
            ),
            _mail_to_unsubscribe("someone@example.org", "hello", "news@news.example.org"),
        ):
            data = message if isinstance(message, bytes) else message.as_bytes()
            imap.append("INBOX", "", imaplib.Time2Internaldate(time.time()), data)
        no_password = run_digest(["bounces", "--config", str(mailed.config_path)], run_env)
        assert no_password.returncode == 1 and "DIGEST_IMAP_PASSWORD" in no_password.stderr
        assert "Traceback" not in no_password.stderr
        run_env["DIGEST_IMAP_PASSWORD"] = dovecot.password
        result = bounces(mailed, run_env)
        assert [status_of(mailed, r[0]) for r in READERS] == ["unsubscribed", "bounced", "active"]
        assert "left for a person" in result.stdout
        imap.select("INBOX")
        unseen = imap.search(None, "UNSEEN")[1][0].split()
        assert len(unseen) == 1  # the stranger's mail, for a person
        remaining = imap.search(None, "ALL")[1][0].split()
        assert len(remaining) == (3 if not folder else 1)
        if folder:
            imap.select(folder)
            assert len(imap.search(None, "ALL")[1][0].split()) == 2
        again = bounces(mailed, run_env)
        assert "is now" not in again.stdout
        imap.logout()
