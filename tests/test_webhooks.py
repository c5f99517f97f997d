"""Bounce and complaint webhooks posted over HTTP to a running `digest serve`.

The SES tests sign SNS messages with a key and certificate made here with
`cryptography`; the server fetches the certificate through the injectable fetcher,
so nothing leaves the machine, and a certificate anywhere but SNS's host is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from conftest import SERVE_CONFIG, write_subscribers
from digest.web import webhooks
from servehelpers import request, serving, status_of

SECRET = "webhook-secret-of-enough-length"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
READERS = [
    ("a@example.com", "甲", "", "active", ""),
    ("b@example.com", "乙", "", "active", ""),
    ("c@example.com", "丙", "", "active", ""),
]


@pytest.fixture
def hooked(site, monkeypatch):
    monkeypatch.setenv("DIGEST_WEBHOOK_SECRET", SECRET)
    site.write_config(SERVE_CONFIG + f'[bounces]\nsoft_limit = 2\nses_topics = "{TOPIC}"\n')
    write_subscribers(site.root / "subscribers.csv", READERS)
    with serving(site.config) as instance:
        instance.site = site
        yield instance


def post(server, path, body: bytes, headers: dict[str, str]):
    req = urllib.request.Request(server.url.rstrip("/") + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def signed(body: dict, *, secret: str = SECRET, at: float | None = None) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = int(time.time() if at is None else at)
    signature = webhooks.sign_bounce_webhook(secret.encode(), stamp, raw)
    return raw, {
        "X-Digest-Timestamp": str(stamp),
        "X-Digest-Signature": signature,
        "Content-Type": "application/json",
    }


def statuses(site) -> list[str | None]:
    return [status_of(site, r[0]) for r in READERS]


def test_a_signed_bounce_post_changes_its_reader_and_a_forged_or_stale_one_nothing(hooked):
    site = hooked.site
    assert (
        post(
            hooked,
            "/webhooks/bounce",
            *signed({"address": "a@example.com", "kind": "hard", "status": "5.1.1"}),
        )[0]
        == 200
    )
    assert (
        post(hooked, "/webhooks/bounce", *signed({"address": "b@example.com", "kind": "complaint"}))[0] == 200
    )
    assert statuses(site) == ["bounced", "unsubscribed", "active"]
    forged = signed({"address": "c@example.com", "kind": "complaint"}, secret="someone-elses-secret-value")
    assert post(hooked, "/webhooks/bounce", *forged) == (401, "refused: bad X-Digest-Signature\n")
    stale = signed({"address": "c@example.com", "kind": "complaint"}, at=time.time() - 3600)
    assert post(hooked, "/webhooks/bounce", *stale)[0] == 401
    body, headers = signed({"address": "c@example.com", "kind": "complaint"})
    assert post(hooked, "/webhooks/bounce", body.replace(b"c@", b"a@"), headers)[0] == 401
    assert statuses(site) == ["bounced", "unsubscribed", "active"]
    assert request(hooked, "GET", "/webhooks/bounce")[0] == 404  # only a POST is a webhook


def test_a_replayed_bounce_post_counts_once(hooked):
    body, headers = signed({"address": "c@example.com", "kind": "soft"})
    assert post(hooked, "/webhooks/bounce", body, headers)[0] == 200
    status, text = post(hooked, "/webhooks/bounce", body, headers)
    assert status == 200 and "already handled" in text
    assert status_of(hooked.site, "c@example.com") == "active"  # soft_limit is 2: one counted
    assert (
        post(hooked, "/webhooks/bounce", *signed({"address": "c@example.com", "kind": "soft", "n": 2}))[0]
        == 200
    )
    assert status_of(hooked.site, "c@example.com") == "bounced"


# -- SES over SNS ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sns_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def fetched(sns_key, monkeypatch):
    """The URLs the server fetched; it gets our certificate for CERT_URL."""
    urls: list[str] = []

    def fetch(url: str) -> bytes:
        urls.append(url)
        if url == CERT_URL:
            return sns_key[1]
        return b"<ConfirmSubscriptionResponse/>"

    monkeypatch.setattr(webhooks, "FETCH", fetch)
    webhooks._CERTIFICATES.clear()
    return urls


def sns(key, kind: str, message: str, *, cert_url: str = CERT_URL, topic: str = TOPIC, **extra) -> dict:
    body = {
        "Type": kind,
        "MessageId": extra.pop("MessageId", f"id-{hash(message) & 0xFFFF:x}"),
        "TopicArn": topic,
        "Message": message,
        "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": "2",
        "SigningCertURL": cert_url,
        **extra,
    }
    fields = webhooks._SNS_FIELDS[kind]
    canonical = "".join(f"{k}\n{body[k]}\n" for k in fields if k in body).encode()
    body["Signature"] = base64.b64encode(key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())).decode()
    return body


def ses_bounce(address: str, bounce_type: str = "Permanent") -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bouncedRecipients": [{"emailAddress": address, "status": "5.1.1", "action": "failed"}],
            },
            "mail": {"destination": [address]},
        }
    )


def post_sns(server, body: dict):
    return post(server, "/webhooks/ses", json.dumps(body).encode(), {"Content-Type": "text/plain"})


def test_ses_bounces_and_complaints_with_a_good_signature_change_their_readers(hooked, sns_key, fetched):
    key = sns_key[0]
    assert post_sns(hooked, sns(key, "Notification", ses_bounce("a@example.com")))[0] == 200
    complaint = json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "b@example.com"}]},
        }
    )
    assert post_sns(hooked, sns(key, "Notification", complaint))[0] == 200
    assert statuses(hooked.site) == ["bounced", "unsubscribed", "active"]
    assert fetched == [CERT_URL]  # fetched once, kept


def test_the_ses_webhook_with_a_bad_signature_changes_nothing(hooked, sns_key, fetched):
    key = sns_key[0]
    tampered = sns(key, "Notification", ses_bounce("a@example.com"))
    tampered["Message"] = ses_bounce("c@example.com")
    assert post_sns(hooked, tampered) == (403, "refused: the SNS signature does not verify\n")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert post_sns(hooked, sns(other_key, "Notification", ses_bounce("c@example.com")))[0] == 403
    elsewhere = sns(
        key, "Notification", ses_bounce("c@example.com"), cert_url="https://evil.example.com/cert.pem"
    )
    assert post_sns(hooked, elsewhere)[0] == 403
    lookalike = "https://sns.eu-west-1.amazonaws.com.evil.example.com/cert.pem"
    assert (
        post_sns(hooked, sns(key, "Notification", ses_bounce("c@example.com"), cert_url=lookalike))[0] == 403
    )
    plain = sns(key, "Notification", ses_bounce("c@example.com"), cert_url=CERT_URL.replace("https", "http"))
    assert post_sns(hooked, plain)[0] == 403
    foreign = sns(key, "Notification", ses_bounce("c@example.com"), topic="arn:aws:sns:eu-west-1:999:other")
    assert post_sns(hooked, foreign) == (403, "refused: the topic is not one of [bounces] ses_topics\n")
    assert post(hooked, "/webhooks/ses", b"not json", {})[0] == 400
    assert statuses(hooked.site) == ["active", "active", "active"]
    assert set(fetched) <= {CERT_URL}  # never a URL off SNS's host


def test_ses_subscription_is_confirmed_and_a_replayed_notification_counts_once(hooked, sns_key, fetched):
    key = sns_key[0]
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"
    confirm = sns(
        key, "SubscriptionConfirmation", "You have chosen to subscribe", SubscribeURL=subscribe, Token="t"
    )
    assert post_sns(hooked, confirm) == (200, "ok: subscription confirmed\n")
    assert fetched[-1] == subscribe
    soft = sns(key, "Notification", ses_bounce("c@example.com", "Transient"), MessageId="same-id")
    assert post_sns(hooked, soft)[0] == 200
    status, text = post_sns(hooked, soft)
    assert status == 200 and "already handled" in text
    assert status_of(hooked.site, "c@example.com") == "active"  # one temporary failure of soft_limit 2


# -- Postmark ----------------------------------------------------------------------------------


def postmark(record: dict, password: str = SECRET) -> tuple[bytes, dict[str, str]]:
    auth = base64.b64encode(f"postmark:{password}".encode()).decode()
    return json.dumps(record).encode(), {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}


def test_postmark_bounces_need_the_password_and_count_toward_bounce_after_once_each(hooked):
    hard = {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1, "ID": 42, "Email": "a@example.com"}
    assert post(hooked, "/webhooks/postmark", *postmark(hard, password="wrong-password-here"))[0] == 401
    assert post(hooked, "/webhooks/postmark", json.dumps(hard).encode(), {})[0] == 401
    assert statuses(hooked.site) == ["active", "active", "active"]
    for event_id in (42, 42, 42, 43):  # Postmark retries a post it thinks failed: one event, one count
        status, text = post(hooked, "/webhooks/postmark", *postmark({**hard, "ID": event_id}))
        assert status == 200, text
    assert status_of(hooked.site, "a@example.com") == "active"  # two permanent failures of bounce_after 3
    status, text = post(hooked, "/webhooks/postmark", *postmark({**hard, "ID": 44}))
    assert "a@example.com is now bounced (3 permanent failures)" in text
    spam = {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "ID": 45, "Email": "b@example.com"}
    assert post(hooked, "/webhooks/postmark", *postmark(spam))[0] == 200
    assert statuses(hooked.site) == ["bounced", "unsubscribed", "active"]
