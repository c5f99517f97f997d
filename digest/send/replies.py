"""What an SMTP reply means for a send: one table from reply code, enhanced code and wording to a decision.

A refusal is about the *mailbox* (this address is dead or full: fail that one
recipient, which counts towards ``bounce_after``), about the *sender* (a sending
quota, a rate, a policy: the same answer would come for everyone, so the send
pauses, nobody is failed and the next run retries), *temporary* (retry this
message later), or a permanent refusal that says neither (``refused``: failed,
unless ``max_errors`` of them come in a row, which is the sender's problem too).

Enhanced status codes (RFC 3463, ``5.1.1``) are read from the start of the
reply text; servers that give none are judged by their basic code and wording.
The first rule that matches decides.

A send that pauses leaves a note beside its ledger (``<issue>.paused``) saying
why, for ``digest status``; the next send that runs to the end removes it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from digest.errors import StateError
from digest.fsutil import read_json, write_json
from digest.send.ledger import ledger_path

__all__ = ["RULES", "Decision", "Rule", "Verdict", "classify", "note_pause", "pause_note", "reply_text"]

PAUSE_SUFFIX = ".paused"


class Decision(StrEnum):
    MAILBOX = "mailbox"  # this recipient only, for good
    SENDER = "sender"  # the sender or the server: pause the whole send
    RETRY = "retry"  # temporary: try this message again later
    REFUSED = "refused"  # permanent, about nobody in particular


@dataclass(frozen=True)
class Rule:
    """``code`` and ``enhanced`` are matched at the start, ``words`` anywhere (case-insensitive)."""

    code: str
    decision: Decision
    why: str
    enhanced: str | None = None
    words: str | None = None

    def matches(self, code: int, enhanced: str, text: str) -> bool:
        return (
            re.match(self.code, str(code)) is not None
            and (self.enhanced is None or re.match(self.enhanced, enhanced) is not None)
            and (self.words is None or re.search(self.words, text, re.IGNORECASE) is not None)
        )


_SENDING_LIMIT = (
    r"\b(?:send|sending|sent|submission|submit|outbound|outgoing|daily|hourly|per (?:hour|day|minute))"
    r"\b[^.;]*\b(?:quota|limit)|submissionquota"
)
_SENDER_WORDS = r"quota|too many|rate[- ]?limit|\brate\b|limit exceeded|exceeded[^.;]*limit"
_MAILBOX_WORDS = (
    r"no such (?:user|mailbox|recipient|address)|user unknown|unknown (?:user|recipient|mailbox)"
    r"|mailbox (?:unavailable|not found|disabled|is full|full)|does not exist|invalid (?:recipient|mailbox)"
    r"|recipient (?:address )?rejected|address rejected|account (?:disabled|is disabled)"
)
# A relay that has not verified the sending identity (Amazon SES's sandbox answers "Email address is not
# verified" for every recipient it has not verified either): the same refusal will come for everyone.
_UNVERIFIED_WORDS = (
    r"\b(?:not|un)[- ]?verified\b|\bverify (?:your|the) (?:sender|identity|domain)|identit(?:y|ies) failed"
    r"|relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)"
    r"|not (?:allowed|authori[sz]ed) to (?:send|relay)"
    r"|sender (?:address )?(?:rejected|refused|denied|blocked|not allowed)"
)

RULES: tuple[Rule, ...] = (
    Rule(r"[45]", Decision.SENDER, "the sender is over a sending quota or limit", words=_SENDING_LIMIT),
    Rule(r"[45]", Decision.SENDER, "the server refuses the sender address", enhanced=r"[45]\.1\.[78]\b"),
    Rule(r"5", Decision.MAILBOX, "the recipient's address or mailbox is refused", enhanced=r"5\.[12]\."),
    Rule(r"4", Decision.RETRY, "the recipient's mailbox is busy or full for now", enhanced=r"4\.[12]\."),
    Rule(r"[45]", Decision.SENDER, "the server limits the sender (a quota or rate)", words=_SENDER_WORDS),
    Rule(r"5", Decision.SENDER, "the server refuses mail from this sender for now", enhanced=r"5\.4\."),
    Rule(r"5", Decision.SENDER, "the server refuses the message as policy", enhanced=r"5\.7\."),
    Rule(r"5", Decision.SENDER, "the relay refuses this sender or account", words=_UNVERIFIED_WORDS),
    Rule(r"5", Decision.MAILBOX, "the recipient's address or mailbox is refused", words=_MAILBOX_WORDS),
    Rule(r"5", Decision.REFUSED, "the server refused this message"),
    Rule(r"4", Decision.RETRY, "the server asks to try again later"),
)
_FALLBACK = Rule(r"", Decision.RETRY, "the server gave an unexpected reply")
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Verdict:
    """A decision, the rule's reason, and the reply as one ``CODE text`` string."""

    decision: Decision
    why: str
    reply: str


def reply_text(code: int | None, message: str) -> str:
    """``550 5.1.1 text``: the code once, even when the server repeated it at the start of its text."""
    text = " ".join(message.split())
    if code is None:
        return text
    while re.match(rf"{code}[ -]", text):
        text = text[4:].lstrip()
    return f"{code} {text}".strip()


def classify(code: int, message: str) -> Verdict:
    """The first rule of :data:`RULES` that matches the reply decides."""
    reply = reply_text(code, message)
    text = reply[len(str(code)) :].strip()
    found = _ENHANCED.match(text)
    enhanced = found.group(1) if found else ""
    rule = next((r for r in RULES if r.matches(code, enhanced, text)), _FALLBACK)
    return Verdict(rule.decision, rule.why, reply)


def _pause_path(state_dir: Path, key: str) -> Path:
    return ledger_path(state_dir, key).with_name(f"{key}{PAUSE_SUFFIX}")


def note_pause(state_dir: Path, key: str, reason: str | None, now: dt.datetime) -> None:
    """Remember why a send stopped short (for ``digest status``); forget it once a send runs to the end."""
    path = _pause_path(state_dir, key)
    with contextlib.suppress(OSError, StateError):  # a note, not state: the ledger is the record
        if reason is not None:
            write_json(path, {"reason": reason, "at": now.isoformat(timespec="seconds")})
        else:
            path.unlink(missing_ok=True)


def pause_note(state_dir: Path, key: str) -> str | None:
    """Why the last send of an issue paused or stopped, and when; None when it did not."""
    try:
        data = read_json(_pause_path(state_dir, key), what="the pause note")
    except StateError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("reason"), str):
        return None
    return f"{data['reason']} (at {data.get('at', '?')})"
