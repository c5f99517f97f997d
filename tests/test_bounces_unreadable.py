"""One message in the bounce box stops nothing: whatever cannot be read is left for a person in one
line, and the mailbox (and the ``digest run`` that reads it first) goes on."""

from __future__ import annotations

from conftest import run_digest, write_subscribers

DOMAIN = "news.example.org"


def nested(levels: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nhello\r\n"
    for n in range(levels):
        body = b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n' % (
            n,
            n,
            body,
            n,
        )
    return b"From: someone@example.net\r\nMessage-ID: <nested@example.net>\r\nMIME-Version: 1.0\r\n" + body


EIGHT_BIT_DSN = (
    b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@news.example.org\r\n"
    b"Subject: \xe9chec de livraison \xff\r\nMessage-ID: <8bit@mx.example.net>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\n\xe9chec\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
    b"Final-Recipient: rfc822; li\xe9@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
)
EIGHT_BIT_FROM = (
    b"From: \xe6\x9d\x8e \xff <li@example.com>\r\nTo: news@news.example.org\r\nSubject: \xc4\x80 hello\r\n"
    b"Message-ID: <from@example.net>\r\n\r\nhello\r\n"
)
RAW_HEADERS = (
    b"Message-ID: <raw@example.net>\r\nContent-Type: multipart/report; boundary=\xff\xfe\r\n\r\n--\xff\r\n"
)


def test_unreadable_messages_are_left_for_a_person_and_the_run_goes_on(site, run_env):
    site.write_config(
        f'[email]\nfrom = "News <news@{DOMAIN}>"\ntransport = "maildir:sent"\n'
        f'unsubscribe_url = "https://{DOMAIN}/unsubscribe"\n[bounces]\nmailbox = "maildir:bounces"\n'
    )
    site.copy_examples()
    write_subscribers(
        site.root / "subscribers.csv",
        [("li@example.com", "", "", "active", ""), ("han@example.com", "", "", "active", "")],
    )
    for sub in ("new", "cur", "tmp"):
        (site.root / "bounces" / sub).mkdir(parents=True)
    odd = {
        "a-nested": nested(1500),
        "b-8bit-dsn": EIGHT_BIT_DSN,
        "c-8bit-from": EIGHT_BIT_FROM,
        "d-raw": RAW_HEADERS,
    }
    for name, data in odd.items():
        (site.root / "bounces" / "new" / name).write_bytes(data)
    genuine = (  # after them in the box: still read (no VERP here, so the address it names counts)
        "From: MAILER-DAEMON@mx.example.net\r\nTo: news@news.example.org\r\nSubject: failure\r\n"
        "Message-ID: <ok@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; han@example.com\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    (site.root / "bounces" / "new" / "z-genuine").write_text(genuine)
    config = ["--config", str(site.config_path)]
    result = run_digest(["bounces", *config], run_env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5, lines
    for name in odd:
        line = next(x for x in lines if x.startswith(f"new/{name}:"))
        assert line.endswith("left for a person"), line
    assert "han@example.com is now bounced" in result.stdout
    assert sorted(p.name for p in (site.root / "bounces" / "new").iterdir()) == sorted(odd)
    run = run_digest(["run", *config], run_env)  # reads the box first, then goes on
    assert run.returncode == 0 and "internal error" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
