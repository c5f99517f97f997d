"""The webhooks against someone who is not the mail provider: nothing fetched for a foreign topic,
certificate fetches one at a time and remembered, every malformed post a one-line 4xx, a busy
list a 503, and a reader's page answered meanwhile."""

from __future__ import annotations

import fcntl
import threading
import time

import pytest
from test_webhooks import READERS, SECRET, TOPIC, post, post_sns, ses_bounce, signed, sns, sns_key  # noqa: F401

from conftest import SERVE_CONFIG, write_subscribers
from digest.web import webhooks
from servehelpers import request, serving, status_of

MADE_UP = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-{n}.pem"


@pytest.fixture
def hooked(site, monkeypatch):
    monkeypatch.setenv("DIGEST_WEBHOOK_SECRET", SECRET)
    site.write_config(SERVE_CONFIG + f'[bounces]\nses_topics = "{TOPIC}"\n')
    write_subscribers(site.root / "subscribers.csv", READERS)
    webhooks._CERTIFICATES.clear()
    webhooks._FAILED.clear()
    with serving(site.config) as instance:
        instance.site = site
        yield instance


@pytest.fixture
def slow_fetch(monkeypatch):
    """A certificate server that answers only when told to: the URLs asked for, and the switch."""
    asked: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def fetch(url: str) -> bytes:
        asked.append(url)
        entered.set()
        release.wait(30)
        raise OSError("no such certificate")

    monkeypatch.setattr(webhooks, "FETCH", fetch)
    yield asked, entered, release
    release.set()


def test_a_foreign_topic_is_refused_before_anything_is_fetched(hooked, sns_key, slow_fetch):  # noqa: F811
    asked, _, _ = slow_fetch
    for n in range(8):
        body = sns(
            sns_key[0],
            "Notification",
            ses_bounce("a@example.com"),
            cert_url=MADE_UP.format(n=n),
            topic="arn:x",
        )
        assert post_sns(hooked, body) == (403, "refused: the topic is not one of [bounces] ses_topics\n")
    assert asked == []


def test_made_up_certificates_hold_one_fetch_at_most_and_readers_are_answered(hooked, sns_key, slow_fetch):  # noqa: F811
    asked, entered, release = slow_fetch
    key = sns_key[0]
    first: list[tuple[int, str]] = []
    worker = threading.Thread(
        target=lambda: first.append(
            post_sns(hooked, sns(key, "Notification", "{}", cert_url=MADE_UP.format(n=0)))
        )
    )
    worker.start()
    assert entered.wait(10)  # the first post is waiting on its certificate
    for n in range(1, 9):
        status, text = post_sns(hooked, sns(key, "Notification", "{}", cert_url=MADE_UP.format(n=n)))
        assert status == 403 and "being fetched just now" in text
    started = time.monotonic()
    assert request(hooked, "GET", "/subscribe")[0] == 200
    assert time.monotonic() - started < 1.0
    release.set()
    worker.join(10)
    assert first[0][0] == 403 and "could not be fetched" in first[0][1]
    again = post_sns(hooked, sns(key, "Notification", "{}", cert_url=MADE_UP.format(n=0)))
    assert again[0] == 403 and asked == [MADE_UP.format(n=0)]  # a URL that failed is not fetched again soon
    assert [status_of(hooked.site, r[0]) for r in READERS] == ["active"] * 3


def test_every_malformed_post_is_a_one_line_4xx(hooked):
    raw, good = signed({"address": "a@example.com", "kind": "hard"})
    cases = [
        {**good, "X-Digest-Timestamp": "²³"},
        {**good, "X-Digest-Timestamp": "9" * 40},
        {**good, "X-Digest-Signature": "sha256=\u00e9\u00e9"},
        {**good, "X-Digest-Signature": "sha256=" + "g" * 64},
    ]
    for headers in cases:
        status, text = post(hooked, "/webhooks/bounce", raw, headers)
        assert status == 401 and text.count("\n") == 1 and text.startswith("refused:"), (headers, text)
    deep = b"[" * 100_000
    for path, body in (("/webhooks/ses", deep), ("/webhooks/bounce", deep), ("/webhooks/postmark", deep)):
        headers = signed({})[1] if path == "/webhooks/bounce" else {}
        if path == "/webhooks/bounce":
            headers = dict(headers)
            stamp = int(headers["X-Digest-Timestamp"])
            headers["X-Digest-Signature"] = webhooks.sign_bounce_webhook(SECRET.encode(), stamp, body)
        if path == "/webhooks/postmark":
            import base64

            headers = {"Authorization": "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()}
        status, text = post(hooked, path, body, headers)
        assert 400 <= status < 500 and text.count("\n") == 1, (path, status, text)
    assert [status_of(hooked.site, r[0]) for r in READERS] == ["active"] * 3


def test_a_signed_post_while_the_list_is_locked_is_a_503(hooked, monkeypatch):
    from digest.subscribers import rewrite

    monkeypatch.setattr(rewrite, "LOCK_WAIT", 0.2)
    path = hooked.site.root / "subscribers.csv"
    path.write_text(path.read_text() + "d@example.com,,,active,\n")  # the index is rebuilt under the lock
    with open(path.with_name(f".{path.name}.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        status, text = post(hooked, "/webhooks/bounce", *signed({"address": "a@example.com", "kind": "hard"}))
    assert status == 503 and text.count("\n") == 1 and "try again" in text, text
    status, _ = post(
        hooked, "/webhooks/bounce", *signed({"address": "a@example.com", "kind": "hard", "status": "5.1.1"})
    )
    assert status == 200 and status_of(hooked.site, "a@example.com") == "bounced"
    assert (hooked.site.root / "state" / "bounces.sqlite").is_file()
