"""Bounces and complaints posted by a mail provider: ``POST .../webhooks/NAME`` on ``digest serve``.

Framework-free: each handler takes the config, the request headers and body and
returns (HTTP status, one line of text), so any server can route to it
(:data:`WEBHOOKS`). Whatever is posted goes through the same record and rules as
the bounce mailbox (:mod:`digest.bounces.record`), keyed by the provider's event
id, so a post delivered twice counts once. A post that fails its check changes nothing.

``/webhooks/bounce``  ``{"address": ..., "kind": "hard"|"soft"|"complaint", "issue": "2026-11-01"?,
                      "status": "5.1.1"?}``, with ``X-Digest-Timestamp`` (Unix seconds, within
                      5 minutes) and ``X-Digest-Signature: sha256=HEX``, the HMAC-SHA256 of
                      ``TIMESTAMP.BODY`` keyed by ``$DIGEST_WEBHOOK_SECRET``.
``/webhooks/ses``     Amazon SES notifications over SNS: the message signature is checked
                      against its signing certificate (an https URL on sns.REGION.amazonaws.com),
                      the topic must be one of ``[bounces] ses_topics``; a
                      SubscriptionConfirmation is confirmed by fetching its SubscribeURL.
                      The topic is checked before anything is fetched; certificates are
                      fetched one at a time with a short timeout, and kept (a URL that
                      failed is not tried again for a while).
``/webhooks/postmark`` Postmark's bounce and spam-complaint webhooks, with HTTP basic auth
                      whose password is ``$DIGEST_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from digest.bounces.classify import Event, Verdict
from digest.bounces.record import apply_events
from digest.config import Config
from digest.errors import DigestError
from digest.subscribers.changes import find_changeable
from digest.subscribers.model import address_key

__all__ = [
    "MAX_BODY",
    "WEBHOOKS",
    "WEBHOOK_SECRET_ENV",
    "handle_bounce_webhook",
    "handle_postmark_webhook",
    "handle_ses_webhook",
    "sign_bounce_webhook",
    "webhook_for",
]

WEBHOOK_SECRET_ENV = "DIGEST_WEBHOOK_SECRET"
MAX_SKEW = 300  # seconds a signed post may be early or late
SNS_MAX_AGE = 3600
MAX_BODY = 256 * 1024
Fetch = Callable[[str], bytes]
Reply = tuple[int, str]
_NOT_CONFIGURED: Reply = (503, f"webhook not configured: set {WEBHOOK_SECRET_ENV} (16 characters or more)")
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SNS_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SNS_FIELDS = {  # what each kind of SNS message signs, in this order
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SNS_CONFIRMATION,
    "UnsubscribeConfirmation": _SNS_CONFIRMATION,
}
_SNS_CERT_PATH = re.compile(r"/SimpleNotificationService-[0-9A-Za-z]{1,64}\.pem")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
FETCH_TIMEOUT = 3.0  # seconds for one certificate or confirmation fetch
CERTIFICATES_KEPT = 16
FAILED_FETCH_PAUSE = 300.0  # seconds before a certificate URL that failed is fetched again
_CERTIFICATES: OrderedDict[str, Any] = OrderedDict()
_FAILED: dict[str, float] = {}
_FETCHING = threading.Lock()  # one certificate fetch at a time: posts cannot hold every worker on it


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _lower(headers: Mapping[str, str] | Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _json(body: bytes) -> Any:
    """The JSON of a body; ValueError for anything else, nesting too deep for the parser included."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("nested too deep") from None


def _secret() -> bytes | None:
    value = os.environ.get(WEBHOOK_SECRET_ENV, "").strip()
    return value.encode() if len(value) >= 16 else None


def _record(config: Config, source: str, kind: str, address: str, now: float, **extra: str) -> Reply:
    """Apply one event for a listed address; the same answer whether or not it is listed."""
    found = find_changeable(config.paths.subscribers, config.feeds.slugs, address) if address else None
    if found is None:
        return 200, "ok: no change"
    event = Event(address_key(found.email), kind, f"{kind} reported by {source.split(':')[0]}", **extra)
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        return 200, "ok: " + apply_events(config, source, Verdict(kind, event.reason, (event,)), at)
    except DigestError as exc:
        return 503, f"not recorded: {exc.message}"


# -- the generic, HMAC-signed webhook -------------------------------------------------------------


def sign_bounce_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Digest-Signature`` value for a post (what a sender computes)."""
    return "sha256=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def handle_bounce_webhook(
    config: Config, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Reply:
    """``POST /webhooks/bounce``: one signed event in digest's own small JSON format."""
    secret, now, headers = _secret(), _now(now), _lower(headers)
    if secret is None:
        return _NOT_CONFIGURED
    stamp, signature = headers.get("x-digest-timestamp", ""), headers.get("x-digest-signature", "")
    if not _TIMESTAMP.fullmatch(stamp) or abs(now - int(stamp)) > MAX_SKEW:
        return 401, "refused: missing or stale X-Digest-Timestamp"
    if not _SIGNATURE.fullmatch(signature) or not hmac.compare_digest(
        signature, sign_bounce_webhook(secret, int(stamp), body)
    ):
        return 401, "refused: bad X-Digest-Signature"
    try:
        data = _json(body)
        address, kind = str(data["address"]), str(data["kind"])
        issue, status = str(data.get("issue") or ""), str(data.get("status") or "")
    except (ValueError, KeyError, TypeError):
        return 400, 'refused: the body must be {"address": ..., "kind": "hard"|"soft"|"complaint"}'
    if kind not in ("hard", "soft", "complaint"):
        return 400, "refused: kind must be hard, soft or complaint"
    source = "webhook:" + hashlib.sha256(signature.encode()).hexdigest()[:32]
    return _record(config, source, kind, address, now, issue=issue, status=status)


# -- Amazon SES over SNS ----------------------------------------------------------------------------


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # only an https URL on SNS's host
        return response.read(64 * 1024)


FETCH: Fetch = _fetch  # what the server uses; tests put their own certificate server here


def _sns_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return (
            parts.scheme == "https" and bool(_SNS_HOST.fullmatch(parts.hostname or "")) and parts.port is None
        )
    except ValueError:  # an unclosed '[', a port that is not a number
        return False


def _sns_verified(message: dict[str, Any], fetch: Fetch) -> str | None:
    """None when the SNS signature is good; else why it is refused."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    kind = message.get("Type")
    fields = _SNS_FIELDS.get(str(kind))
    if fields is None:
        return f"unknown SNS message type {kind!r}"
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        return "unknown SignatureVersion"
    url = str(message.get("SigningCertURL", ""))
    if not _sns_url(url) or not _SNS_CERT_PATH.fullmatch(urlsplit(url).path) or urlsplit(url).query:
        return "SigningCertURL is not a certificate URL on sns.<region>.amazonaws.com"
    canonical = "".join(f"{k}\n{message[k]}\n" for k in fields if k in message).encode()
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (ValueError, binascii.Error, TypeError):
        return "the SNS signature does not verify"
    certificate = _certificate(url, fetch, x509.load_pem_x509_certificate)
    if isinstance(certificate, str):
        return certificate
    try:
        certificate.public_key().verify(signature, canonical, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError, TypeError):
        return "the SNS signature does not verify"
    now = dt.datetime.now(dt.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return "the SNS signing certificate has expired"
    return None


def _certificate(url: str, fetch: Fetch, load: Callable[[bytes], Any]) -> Any:
    """The signing certificate at ``url``: kept once fetched; else why there is none (a line).

    One fetch at a time, and none for a while of a URL that failed, so posts naming
    made-up certificates cannot hold the server's workers.
    """
    if url in _CERTIFICATES:
        _CERTIFICATES.move_to_end(url)
        return _CERTIFICATES[url]
    if time.monotonic() < _FAILED.get(url, float("-inf")):
        return "the SNS signing certificate could not be fetched a moment ago"
    if not _FETCHING.acquire(blocking=False):
        return "another SNS certificate is being fetched just now; try again"
    try:
        certificate = load(fetch(url))
    except (ValueError, TypeError, OSError) as exc:
        if len(_FAILED) > 1000:
            _FAILED.clear()
        _FAILED[url] = time.monotonic() + FAILED_FETCH_PAUSE
        return f"the SNS signing certificate could not be fetched ({exc.__class__.__name__})"
    finally:
        _FETCHING.release()
    _CERTIFICATES[url] = certificate
    while len(_CERTIFICATES) > CERTIFICATES_KEPT:
        _CERTIFICATES.popitem(last=False)
    return certificate


def handle_ses_webhook(
    config: Config,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    fetch: Fetch | None = None,
) -> Reply:
    """``POST /webhooks/ses``: an SNS message carrying an SES bounce or complaint notification.

    ``fetch`` gets the signing certificate and confirms subscriptions (default:
    :data:`FETCH`, an https GET); it is only ever given URLs on SNS's own host.
    """
    now, fetch = _now(now), fetch or FETCH
    topics = config.bounces.ses_topics.replace(",", " ").split()
    if not topics:
        return 503, "SES webhook not configured: list your SNS topic ARNs in [bounces] ses_topics"
    try:
        message = _json(body)
        if not isinstance(message, dict):
            raise ValueError
    except ValueError:
        return 400, "refused: not an SNS message"
    problem = None
    if message.get("TopicArn") not in topics:  # before anything is fetched
        problem = "the topic is not one of [bounces] ses_topics"
    if problem is None and abs(now - _sns_time(message)) > SNS_MAX_AGE:
        problem = "the message is too old (a replay?)"
    problem = problem or _sns_verified(message, fetch)
    if problem is not None:
        return 403, f"refused: {problem}"
    if message["Type"] == "SubscriptionConfirmation":
        subscribe = str(message.get("SubscribeURL", ""))
        if not _sns_url(subscribe):
            return 403, "refused: SubscribeURL is not on sns.<region>.amazonaws.com"
        try:
            fetch(subscribe)
        except OSError as exc:
            return 502, f"could not confirm the subscription: {exc}"
        return 200, "ok: subscription confirmed"
    if message["Type"] != "Notification":
        return 200, "ok: nothing to do"
    return _ses_notification(config, str(message.get("MessageId", "")), str(message.get("Message", "")), now)


def _sns_time(message: dict[str, Any]) -> float:
    try:
        return dt.datetime.fromisoformat(str(message.get("Timestamp", "")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _ses_notification(config: Config, message_id: str, text: str, now: float) -> Reply:
    try:
        note = _json(text.encode("utf-8", "surrogatepass"))
        kind = note.get("notificationType") or note.get("eventType")
    except (ValueError, AttributeError, UnicodeError):
        return 400, "refused: the SNS message is not an SES notification"
    if kind == "Bounce":
        bounce = note.get("bounce") or {}
        event = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        people = [
            (r.get("emailAddress", ""), str(r.get("status") or ""))
            for r in bounce.get("bouncedRecipients", [])
        ]
    elif kind == "Complaint":
        complaint = note.get("complaint") or {}
        if complaint.get("complaintFeedbackType") == "not-spam":
            return 200, "ok: not a complaint"
        event = "complaint"
        people = [(r.get("emailAddress", ""), "") for r in complaint.get("complainedRecipients", [])]
    else:
        return 200, f"ok: {kind or 'this notification'} changes nothing"
    replies = [
        _record(config, f"ses:{message_id}:{n}", event, str(address), now, status=status)
        for n, (address, status) in enumerate(people)
    ]
    if not replies:
        return 200, "ok: no change"
    return max(status for status, _ in replies), "; ".join(text for _, text in replies)


# -- Postmark ----------------------------------------------------------------------------------


def handle_postmark_webhook(
    config: Config, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Reply:
    """``POST /webhooks/postmark``: Postmark's Bounce and SpamComplaint records, behind basic auth."""
    secret, now, headers = _secret(), _now(now), _lower(headers)
    if secret is None:
        return _NOT_CONFIGURED
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    try:
        password = base64.b64decode(credentials, validate=True).partition(b":")[2]
    except (binascii.Error, ValueError):
        password = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(password, secret):
        return 401, "refused: bad credentials"
    try:
        data = _json(body)
        record, address, event_id = str(data["RecordType"]), str(data.get("Email", "")), str(data["ID"])
    except (ValueError, KeyError, TypeError):
        return 400, "refused: not a Postmark webhook record"
    if record == "SpamComplaint":
        kind = "complaint"
    elif record == "Bounce" and data.get("Type") in ("HardBounce", "BadEmailAddress", "ManuallyDeactivated"):
        kind = "hard"
    elif record == "Bounce" and data.get("Type") in ("SoftBounce", "Transient", "DnsError"):
        kind = "soft"
    else:
        return 200, "ok: changes nothing"
    return _record(config, f"postmark:{event_id}", kind, address, now)


WEBHOOKS: dict[str, Callable[..., Reply]] = {
    "bounce": handle_bounce_webhook,
    "ses": handle_ses_webhook,
    "postmark": handle_postmark_webhook,
}


def webhook_for(path: str) -> Callable[..., Reply] | None:
    """The handler for a request path ending in ``/webhooks/NAME`` (any prefix a proxy adds)."""
    segments = path.rstrip("/").split("/")
    if len(segments) >= 2 and segments[-2] == "webhooks":
        return WEBHOOKS.get(segments[-1])
    return None
