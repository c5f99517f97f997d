"""Short signed tokens that fit in an address's local part: VERP return paths, tokened mailtos.

``[email] return_path = "bounces+{token}@example.org"`` gives each message its own
envelope sender (and ``unsubscribe_mailto = "unsubscribe+{token}@example.org"`` its own
unsubscribe address), so a bounce names the issue and the recipient even when the
delivery report is garbled or names a forwarding address. A token is
``<issue date as YYYYMMDD>-<20 hex digits>``: the digits are an HMAC-SHA256 (keyed by
the same secret as the other tokens in :mod:`digest.mail.tokens`) over the
purpose, the issue and the address. It holds no address (a local part has at most 64
characters), so it is matched by trying it against the addresses on the list;
without the secret no one can make one that matches. Lower case only, since some
servers fold the case of local parts.
"""

from __future__ import annotations

import hmac
import re

__all__ = [
    "TOKEN_FIELD",
    "compact_token",
    "return_path_for",
    "token_in_address",
    "token_issue",
    "token_matches",
]

TOKEN_FIELD = "{token}"
DIGITS = 20
_TOKEN = re.compile(r"(?P<issue>\d{8})-(?P<mac>[0-9a-f]{" + str(DIGITS) + "})")


def compact_token(secret: bytes, purpose: str, issue_key: str, address: str) -> str:
    """The token for (purpose, issue, address); ``issue_key`` is the issue's date (YYYY-MM-DD)."""
    return f"{issue_key.replace('-', '')}-{_mac(secret, purpose, issue_key, address)}"


def token_matches(secret: bytes, token: str, purpose: str, address: str) -> bool:
    """Whether ``token`` was made for this purpose and address (its issue is read from the token)."""
    issue = token_issue(token)
    if issue is None:
        return False
    return hmac.compare_digest(token.lower(), compact_token(secret, purpose, issue, address))


def token_issue(token: str) -> str | None:
    """The issue key (YYYY-MM-DD) a well-formed token names, or None."""
    match = _TOKEN.fullmatch(token.lower())
    if not match:
        return None
    digits = match["issue"]
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"


def return_path_for(
    template: str, sender: str, secret: bytes, issue_key: str, address: str, purpose: str = "bounce"
) -> str:
    """The envelope sender (or a tokened mailto) for one message: ``template`` filled in, or ``sender``."""
    if not template:
        return sender
    if TOKEN_FIELD not in template:
        return template
    return template.replace(TOKEN_FIELD, compact_token(secret, purpose, issue_key, address))


def token_in_address(template: str, address: str) -> str | None:
    """The token in ``address`` if it has the template's shape (``bounces+{token}@host``), else None."""
    if TOKEN_FIELD not in template or "@" not in address:
        return None
    before, after = template.split(TOKEN_FIELD, 1)
    pattern = re.escape(before.lower()) + r"(?P<token>[0-9a-z-]+)" + re.escape(after.lower())
    match = re.fullmatch(pattern, address.strip().lower())
    return match["token"] if match and token_issue(match["token"]) else None


def _mac(secret: bytes, purpose: str, issue_key: str, address: str) -> str:
    message = "\x00".join(("digest-verp", purpose, issue_key, address.lower())).encode("utf-8")
    return hmac.digest(secret, message, "sha256").hex()[:DIGITS]
