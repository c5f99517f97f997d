"""Only what digest signed changes the list: forged reports, forged tokens and their cost.

An outsider can write a delivery report, a complaint or a ``From:`` line naming any
reader; none of those counts with VERP on unless it carries a VERP token, a signed
link or a Message-ID digest made. Tokens naming issues never sent are refused before
anything is hashed, and a report quoting its original reads no ledger.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
from email.message import EmailMessage
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from conftest import KNOWN
from digest.bounces import record
from digest.bounces.record import read_mailbox
from digest.mail.tokens import message_id_digest
from digest.mail.verp import compact_token
from digest.send.ledger import Outcome, ledger_path
from digest.subscribers.reading import read_subscribers

SECRET = "a-secret-for-forged-reports-0123"
DOMAIN = "news.example.org"
ISSUE = "2026-11-01"
NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def make_site(site, monkeypatch, readers, issues=(ISSUE,), *, verp=True, outcomes=None):
    """A list of ``readers``, ledgers for ``issues`` (``outcomes`` recipients each), a bounce Maildir."""
    return_path = f'return_path = "bounces+{{token}}@{DOMAIN}"\n' if verp else ""
    site.write_config(
        f'[email]\nfrom = "News <news@{DOMAIN}>"\ntransport = "maildir:sent"\n{return_path}'
        f'unsubscribe_url = "https://{DOMAIN}/unsubscribe"\nunsubscribe_mailto = "unsubscribe@{DOMAIN}"\n'
        'bounce_after = 1\n[bounces]\nmailbox = "maildir:bounces"\n'
    )
    monkeypatch.setenv("DIGEST_SECRET", SECRET)
    lines = ["email,name,sections,status,since", *(f"{a},,,active,2026-01-01" for a in readers)]
    (site.root / "subscribers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for issue in issues:
        path = ledger_path(site.root / "state", issue)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            for address in readers[: outcomes or len(readers)]:
                message_id = f"<{message_id_digest(SECRET.encode(), issue, address)}@{DOMAIN}>"
                outcome = Outcome(address, "sent", 250, message_id, "250 ok", 1, f"{issue}T08:00:00+00:00")
                handle.write(outcome.line())
    for sub in ("new", "cur", "tmp"):
        (site.root / "bounces" / sub).mkdir(parents=True, exist_ok=True)
    return site


def deliver(site, name, message):
    data = message if isinstance(message, bytes) else message.as_bytes()
    (site.root / "bounces" / "new" / name).write_bytes(data)


def dsn(to, failed, status="5.1.1", original_headers="", n=0):
    """A delivery report as a remote server writes one; ``original_headers`` as returned to the sender."""
    returned = (
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n{original_headers}\r\n" if original_headers else ""
    )
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <dsn-{n}-{failed}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n\r\n"
        f"{returned}--b--\r\n"
    ).encode()


def headers_of_original(address, message_id):
    return f"From: News <news@{DOMAIN}>\r\nTo: {address}\r\nSubject: News\r\nMessage-ID: {message_id}\r\n"


def arf(address, original_message_id):
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "fbl@isp.example.net"
    report["To"] = f"bounces@{DOMAIN}"
    report["Subject"] = "complaint"
    report["Message-ID"] = f"<arf-{address}@isp.example.net>"
    report.attach(MIMEText("An abuse report."))
    fields = EmailMessage()
    fields["Feedback-Type"] = "abuse"
    fields["Version"] = "1"
    fields["Original-Rcpt-To"] = address
    report.attach(MIMEMessage(fields, "feedback-report"))
    original = EmailMessage()
    original["From"] = f"news@{DOMAIN}"
    original["To"] = address
    original["Message-ID"] = original_message_id
    original.set_content("the digest")
    report.attach(MIMEMessage(original))
    return report


def statuses(site):
    return {s.email: s.status for s in read_subscribers(site.root / "subscribers.csv", KNOWN).subscribers}


READERS = ["li@example.com", "han@example.com", "wang@example.net", "zhao@example.org"]


def test_with_verp_on_forged_reports_change_nobody_and_each_is_left_for_a_person(site, monkeypatch):
    make_site(site, monkeypatch, READERS)
    forged_mac = f"bounces+{ISSUE.replace('-', '')}-{'0' * 20}@{DOMAIN}"
    made_up_date = "bounces+" + compact_token(b"not-the-secret" * 2, "bounce", "2031-01-01", READERS[1])
    unsubscribe = EmailMessage()
    unsubscribe["From"] = f"Li <{READERS[2]}>"  # forged: anyone can write it
    unsubscribe["To"] = f"unsubscribe@{DOMAIN}"
    unsubscribe["Subject"] = "unsubscribe"
    unsubscribe["Message-ID"] = "<forged-unsubscribe@mallory.example>"
    unsubscribe.set_content("")
    forged = {
        "plain-dsn": dsn(f"bounces@{DOMAIN}", READERS[0]),
        "forged-token": dsn(forged_mac, READERS[1], n=1),
        "made-up-date": dsn(f"{made_up_date}@{DOMAIN}", READERS[1], n=2),
        "forged-message-id": dsn(
            f"bounces@{DOMAIN}", READERS[3], original_headers=headers_of_original(READERS[3], "<x@y>"), n=3
        ),
        "arf": arf(READERS[0], f"<{'ab' * 16}@{DOMAIN}>"),
        "unsubscribe": unsubscribe,
    }
    for name, message in forged.items():
        deliver(site, name, message)
    lines = read_mailbox(site.config, now=NOW)
    assert set(statuses(site).values()) == {"active"}
    assert len(lines) == len(forged) and all("left for a person" in line for line in lines), lines
    assert sorted(p.name for p in (site.root / "bounces" / "new").iterdir()) == sorted(forged)


def test_with_verp_on_reports_carrying_what_digest_signed_count(site, monkeypatch):
    make_site(site, monkeypatch, READERS)
    secret = SECRET.encode()
    token = compact_token(secret, "bounce", ISSUE, READERS[0])
    deliver(site, "verp", dsn(f"bounces+{token}@{DOMAIN}", "someone-else@forward.example", n=1))
    message_id = f"<{message_id_digest(secret, ISSUE, READERS[1])}@{DOMAIN}>"
    deliver(
        site,
        "quoted",
        dsn(f"bounces@{DOMAIN}", READERS[1], "5.2.1", headers_of_original(READERS[1], message_id)),
    )
    deliver(site, "arf", arf(READERS[2], f"<{message_id_digest(secret, ISSUE, READERS[2])}@{DOMAIN}>"))
    read_mailbox(site.config, now=NOW)
    assert statuses(site) == {
        READERS[0]: "bounced",
        READERS[1]: "bounced",
        READERS[2]: "unsubscribed",
        READERS[3]: "active",
    }


def test_tokens_for_issues_never_sent_are_refused_before_any_hashing(site, monkeypatch):
    readers = [f"reader{n:05}@example.com" for n in range(10_000)]
    make_site(site, monkeypatch, readers, outcomes=10)
    start = dt.date(2020, 1, 1)
    for n in range(300):  # tokens for 300 made-up dates, well formed
        date = (start + dt.timedelta(days=n)).isoformat()
        token = compact_token(b"guessing-the-secret-here", "bounce", date, readers[n])
        deliver(site, f"{n}", dsn(f"bounces+{token}@{DOMAIN}", readers[n], n=n))
    hashed = []
    real = record.compact_token
    monkeypatch.setattr(record, "compact_token", lambda *a: hashed.append(a) or real(*a))
    lines = read_mailbox(site.config, now=NOW)
    assert hashed == []  # no table of the list was made for any of them
    assert len(lines) == 300 and all("names no one on the list" in line for line in lines)
    assert set(statuses(site).values()) == {"active"}


@pytest.mark.parametrize("verp", [False, True])
def test_a_report_quoting_its_original_costs_the_same_whatever_the_ledgers_hold(site, monkeypatch, verp):
    readers = [f"reader{n:05}@example.com" for n in range(10_000)]
    issues = [f"2026-0{m}-01" for m in range(1, 10)]

    def peak_for(issue_count):
        make_site(site, monkeypatch, readers, issues[:issue_count], verp=verp)
        reader = readers[issue_count]
        message_id = f"<{message_id_digest(SECRET.encode(), issues[0], reader)}@{DOMAIN}>"
        report = dsn(
            f"bounces@{DOMAIN}", reader, "5.2.1", headers_of_original(reader, message_id), n=issue_count
        )
        deliver(site, f"report-{issue_count}", report)
        tracemalloc.start()
        try:
            lines = read_mailbox(site.config, now=NOW)
            return tracemalloc.get_traced_memory()[1], lines
        finally:
            tracemalloc.stop()

    one, _ = peak_for(1)
    nine, lines = peak_for(9)
    assert lines == [
        f"new/report-9: hard: a delivery report: {readers[9]} is now bounced (1 permanent failures)"
    ]
    assert nine - one < 2_000_000, (one, nine)  # 8 more ledgers of 10,000 lines each: not read
