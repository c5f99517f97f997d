"""What a message that came back means: a bounce, a complaint, an unsubscribe, or nothing.

:func:`classify` reads one message (bytes) and returns a :class:`Verdict`: the
events it carries (an address, a kind and why) or a reason to leave it for a
person. In order:

1. an ARF report (RFC 5965, ``Feedback-Type: abuse``): a complaint about the
   reader named by the original message's signed unsubscribe link, VERP return
   path or Message-ID, or (without VERP) by the report or the original's To;
2. a delivery status notification (RFC 3464, or the older formats GNU Mailman's
   ``flufl.bounce`` knows): a permanent (``hard``) or temporary (``soft``) failure
   for the recipient the VERP token names, else for each failed address on the
   list (with VERP on, only those the returned original shows digest mailed);
3. an auto-reply (``Auto-Submitted``, out of office): left alone;
4. a mail to ``[email] unsubscribe_mailto``: unsubscribes the reader named by a
   signed token, in the subject or the local part.

Only what digest signed changes the list. Anyone can write a delivery report, a
complaint or a ``From:`` line naming any reader; nobody without the secret can
make a VERP token, a signed link or one of digest's Message-IDs (a keyed hash of
the issue and the address). So with VERP on (``[email] return_path`` holds
``{token}``) a bounce or complaint counts only for an address one of those names.
A mail to ``unsubscribe_mailto`` counts only with a valid token, VERP or not:
every ``List-Unsubscribe`` mailto digest writes carries one (in the address with
``{token}``, else in the subject), so a reader's "unsubscribe" button works,
while a mail that only says who it is from is left for a person. Trusting a
``From:`` that passed DKIM or SPF alignment would need the receiving server's
``Authentication-Results``, which are only as good as that server's removal of
forged ones; digest cannot check that from the message, so it does not rely on it.

Anything else is ``unknown`` and is left for a person. Lookups that need the list
or the secret (which address a token names) come in through :class:`Lookup`.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.parser
import email.utils
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from digest.config import Config
from digest.errors import TokenError
from digest.mail.tokens import read_token
from digest.mail.verp import TOKEN_FIELD, token_in_address, token_issue

__all__ = ["ACTING", "USER_UNKNOWN", "Event", "Lookup", "Verdict", "classify"]

USER_UNKNOWN = frozenset({"5.1.1", "5.1.10"})  # no such mailbox: bounced at the first report
ACTING = frozenset({"hard", "soft", "complaint", "unsubscribe"})
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|auto(matic)?[ -]?(reply|response)|auto:|autoreply|vacation|自动回复)",
    re.I,
)
# flufl.bounce logs a line for every detector it runs, and a traceback for every one that trips over a
# malformed message; digest reports such a message in one line of its own instead, whatever logging
# the command has set up.
_FLUFL_LOG = logging.getLogger("flufl.bounce")
_FLUFL_LOG.addHandler(logging.NullHandler())
_FLUFL_LOG.propagate = False
MAX_MULTIPARTS = 100  # a report has a handful; a thousand nested ones would exhaust the parser's recursion
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Event:
    """One thing that happened to one address."""

    address: str  # as the list knows it (lower case)
    kind: str  # hard, soft, complaint, unsubscribe
    reason: str
    issue: str = ""  # the issue key, when known
    status: str = ""  # the DSN status code (5.1.1 ...), when there is one


@dataclass(frozen=True)
class Verdict:
    """What one message means: the events it carries, or (none) what it is and why it is left."""

    kind: str  # hard, soft, complaint, unsubscribe, mixed, auto-reply or unknown
    reason: str
    events: tuple[Event, ...] = ()

    @property
    def acts(self) -> bool:
        return bool(self.events)


class Lookup(Protocol):
    """What classifying needs from the list and the ledgers."""

    secret: bytes

    def listed(self, address: str) -> str | None:
        """The address as the list knows it (lower case), or None when it is not on the list."""

    def by_token(self, token: str, purpose: str) -> str | None:
        """The listed address a compact token was made for."""

    def by_message_id(self, message_id: str, address: str) -> str | None:
        """The issue whose message to ``address`` had this Message-ID (made by digest), or None."""


def classify(data: bytes, config: Config, lookup: Lookup) -> Verdict:
    """What ``data`` (one whole message) means; never raises on a malformed message.

    A message it cannot read (too many MIME parts, headers no parser takes) is
    ``unreadable``: left for a person, and the mailbox is read on.
    """
    if data.lower().count(b"multipart/") > MAX_MULTIPARTS:
        return Verdict("unreadable", f"more than {MAX_MULTIPARTS} multipart sections: no report is built so")
    try:
        message = email.message_from_bytes(data)
        for check in (_feedback, _delivery_status, _auto_reply, _unsubscribe):
            verdict = check(message, config, lookup)
            if verdict is not None:
                return verdict
        subject = _header(message, "Subject")[:60]
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError, UnicodeError) as exc:
        return Verdict("unreadable", f"cannot be read ({exc.__class__.__name__})")
    return Verdict("unknown", f"not a bounce, complaint or unsubscribe (subject {subject!r})")


# -- ARF complaints -------------------------------------------------------------------------


def _feedback(message: email.message.Message, config: Config, lookup: Lookup) -> Verdict | None:
    if message.get_content_type() != "multipart/report":
        return None
    if (message.get_param("report-type") or "").lower() != "feedback-report":
        return None
    fields = next(
        (_fields(p) for p in message.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    if fields is None:
        return Verdict("unknown", "a feedback report without its message/feedback-report part")
    kind = _header(fields, "Feedback-Type").lower()
    if kind != "abuse":
        return Verdict("unknown", f"a feedback report of type {kind or 'none'!r}, not a complaint")
    original = _original(message)
    named = [_address(v) for v in fields.get_all("Original-Rcpt-To") or []]
    named += _recipients(original)
    signed = list(_signed(original, named, config, lookup))
    candidates = signed if _verp_on(config) else [*signed, *((a, "") for a in named)]
    issue = next((i for _, i in signed if i), "")
    for candidate, _ in candidates:
        listed = lookup.listed(candidate) if candidate else None
        if listed:
            return Verdict(
                "complaint",
                "a spam complaint (ARF)",
                (Event(listed, "complaint", "ARF abuse report", issue),),
            )
    if _verp_on(config) and not signed:
        return Verdict("unknown", f"a spam complaint {_UNSIGNED}")
    return Verdict("unknown", "a spam complaint about no address on the list")


def _fields(part: email.message.Message) -> email.message.Message:
    """The report fields of a message/feedback-report part, however the parser left them."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    return email.parser.HeaderParser().parsestr(str(payload or ""))


def _original(message: email.message.Message) -> email.message.Message | None:
    """The returned original message (or its headers) inside a report."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            return payload[0] if isinstance(payload, list) and payload else None
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return email.parser.BytesHeaderParser().parsebytes(text)
    return None


def _recipients(original: email.message.Message | None) -> list[str]:
    """Whom the returned original says it was for (its To and Delivered-To): a claim, not a proof."""
    if original is None:
        return []
    values = [*(original.get_all("To") or []), *(original.get_all("Delivered-To") or [])]
    return [a.lower() for _, a in email.utils.getaddresses([str(v) for v in values]) if a]


def _signed(
    original: email.message.Message | None, named: list[str], config: Config, lookup: Lookup
) -> Iterator[tuple[str, str]]:
    """(address, issue) for each address something digest signed in the original names.

    Its signed unsubscribe link, its VERP return path, or its Message-ID made again
    for one of the ``named`` addresses (so the Message-ID alone names no one).
    """
    if original is None:
        return
    for token in re.findall(r"[?&]token=([A-Za-z0-9_.-]+)", _header(original, "List-Unsubscribe")):
        try:
            yield read_token(lookup.secret, token, purpose="unsubscribe", now=0).email, ""
        except TokenError:
            continue
    token = token_in_address(config.email.return_path, _address(_header(original, "Return-Path")))
    found = lookup.by_token(token, "bounce") if token else None
    if found and token:
        yield found, token_issue(token) or ""
    message_id = _header(original, "Message-ID")
    for address in dict.fromkeys(named):
        issue = lookup.by_message_id(message_id, address) if message_id else None
        if issue:
            yield address, issue


def _verp_on(config: Config) -> bool:
    return TOKEN_FIELD in config.email.return_path


_UNSIGNED = (
    "that carries nothing digest signed (a return-path token, a signed link or one of its Message-IDs); "
    "with VERP on, only those count"
)


# -- delivery status notifications --------------------------------------------------------


def _delivery_status(message: email.message.Message, config: Config, lookup: Lookup) -> Verdict | None:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over a malformed message: treat it as not a bounce
        temporary, permanent = frozenset(), frozenset()
    reports = dict(_status_blocks(message))
    failed = {_decode(a): "soft" for a in temporary} | {_decode(a): "hard" for a in permanent}  # hard wins
    for address, (action, status) in reports.items():
        if address not in failed and action in ("failed", "delayed"):
            failed[address] = "hard" if action == "failed" and status.startswith("5") else "soft"
    if not failed and not reports:
        return None
    if not failed:
        return Verdict("unknown", "a delivery report with no failure (delivered or relayed)")
    original = _original(message)
    verp = next(
        (
            t
            for h in _RECIPIENT_HEADERS
            for v in message.get_all(h) or []
            if (t := token_in_address(config.email.return_path, _address(v)))
        ),
        None,
    )
    if verp is not None:
        who = lookup.by_token(verp, "bounce")
        if who is None:
            return Verdict("unknown", "a bounce whose return-path token names no one on the list")
        kind = "hard" if "hard" in failed.values() else "soft"
        status = next((s for a, s in reports.values() if s), "")
        event = Event(who, kind, _why(kind, status), token_issue(verp) or "", status)
        return Verdict(kind, f"a delivery report (return path names {who})", (event,))
    signed = dict(_signed(original, sorted(failed), config, lookup))
    events = []
    for address, kind in sorted(failed.items()):
        listed = lookup.listed(address)
        if listed and (address in signed or not _verp_on(config)):
            status = reports.get(address, ("", ""))[1]
            events.append(Event(listed, kind, _why(kind, status), signed.get(address, ""), status))
    if not events and _verp_on(config) and any(lookup.listed(a) for a in failed):
        return Verdict("unknown", f"a bounce for {', '.join(sorted(failed))} {_UNSIGNED}")
    if not events:
        return Verdict("unknown", f"a bounce for {', '.join(sorted(failed))}: not on the list")
    kinds = {e.kind for e in events}
    return Verdict(kinds.pop() if len(kinds) == 1 else "mixed", "a delivery report", tuple(events))


def _status_blocks(message: email.message.Message) -> Iterator[tuple[str, tuple[str, str]]]:
    """(recipient, (action, status)) for each per-recipient block of a message/delivery-status part."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            recipient = _header(block, "Original-Recipient") or _header(block, "Final-Recipient")
            if not recipient:
                continue
            recipient = _address(recipient.split(";", 1)[-1])
            match = _STATUS.search(_header(block, "Status"))
            yield recipient, (_header(block, "Action").lower(), match.group(0) if match else "")


def _why(kind: str, status: str) -> str:
    if status in USER_UNKNOWN:
        return f"no such mailbox ({status})"
    return f"{'permanent' if kind == 'hard' else 'temporary'} failure{f' ({status})' if status else ''}"


# -- auto-replies and unsubscribe-by-mail ---------------------------------------------------


def _auto_reply(message: email.message.Message, config: Config, lookup: Lookup) -> Verdict | None:
    auto = _header(message, "Auto-Submitted").lower()
    if (auto and auto != "no") or message.get("X-Autoreply") or message.get("X-Autorespond"):
        return Verdict("auto-reply", "an automatic reply (Auto-Submitted)")
    if _header(message, "Precedence").lower() == "auto_reply" or _AUTO_SUBJECT.match(
        _header(message, "Subject")
    ):
        return Verdict("auto-reply", "an automatic reply (out of office)")
    return None


def _unsubscribe(message: email.message.Message, config: Config, lookup: Lookup) -> Verdict | None:
    template = config.email.unsubscribe_mailto.lower()
    if not template or "@" not in template:
        return None
    mailto = template.replace("+" + TOKEN_FIELD, "").replace(TOKEN_FIELD, "")  # the address, untokened
    local, domain = mailto.rsplit("@", 1)
    recipients = [
        a.lower() for h in _RECIPIENT_HEADERS for _, a in email.utils.getaddresses(message.get_all(h) or [])
    ]
    ours = [a for a in recipients if a == mailto or (a.startswith(local + "+") and a.endswith("@" + domain))]
    if not ours:
        return None
    for word in re.findall(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", _header(message, "Subject")):
        try:
            named = read_token(lookup.secret, word, purpose="unsubscribe", now=0).email
        except TokenError:
            continue
        return _unsubscribe_verdict(lookup.listed(named), "the token in the subject")
    for address in ours:
        token = token_in_address(template, address) or address.split("@", 1)[0][len(local) + 1 :]
        if token and token_issue(token):
            return _unsubscribe_verdict(lookup.by_token(token, "unsubscribe"), "the token in the address")
    sender = _address(_header(message, "From")) or "no one"
    return Verdict(
        "unknown",
        f"a mail to the unsubscribe address from {sender} without digest's token (a From: line can be "
        "forged): unsubscribe them by hand if it is genuine",
    )


def _unsubscribe_verdict(address: str | None, how: str) -> Verdict:
    if address is None:
        return Verdict("unknown", "a mail to the unsubscribe address naming no one on the list")
    return Verdict(
        "unsubscribe",
        f"a mail to the unsubscribe address ({how})",
        (Event(address, "unsubscribe", f"asked by mail ({how})"),),
    )


# -- small helpers ----------------------------------------------------------------------------


def _by_verp(value: str, config: Config, lookup: Lookup) -> str | None:
    token = token_in_address(config.email.return_path, _address(value))
    return lookup.by_token(token, "bounce") if token else None


def _header(message: email.message.Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value)))).strip()
    except (ValueError, LookupError, UnicodeError):
        return str(value).strip()


def _address(value: str) -> str:
    return email.utils.parseaddr(value.strip())[1].strip().lower()


def _decode(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return _address(text)
