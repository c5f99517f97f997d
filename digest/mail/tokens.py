"""Signed tokens for unsubscribe, preference and confirmation links.

A token is ``payload.signature`` in URL-safe base64: the payload names the
address, the purpose and (for confirmations) an expiry; the signature is an
HMAC-SHA256 over it keyed by ``DIGEST_SECRET``. A token made for one purpose
never works for another, and any change to it breaks the signature.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from digest.config import SECRET_ENV, SECRET_FILE
from digest.errors import TokenError

__all__ = [
    "SECRET_ENV",
    "TokenPayload",
    "load_secret",
    "make_token",
    "message_id_digest",
    "read_token",
    "stable_hash",
]

PURPOSES = frozenset({"unsubscribe", "preferences", "confirm"})
MIN_SECRET = 16


@dataclass(frozen=True)
class TokenPayload:
    email: str
    purpose: str
    expires: int | None = None
    sections: tuple[str, ...] | None = None


def load_secret(state_dir: Path) -> bytes:
    """The signing key: ``$DIGEST_SECRET``, else a random key kept in the state directory.

    The generated key (mode 0600) lets the bundled example run with no set-up; a
    deployment sets ``DIGEST_SECRET`` so every digest process shares one key.
    Either way a key shorter than 16 characters is refused: it could be guessed.
    """
    env = os.environ.get(SECRET_ENV)
    if env is not None:
        if len(env.strip()) < MIN_SECRET:
            raise TokenError(f"{SECRET_ENV} is too short: use at least {MIN_SECRET} random characters")
        if re.search(r"change.?me", env, re.I):  # the placeholder in cron/ and the docs
            raise TokenError(
                f"{SECRET_ENV} is still a placeholder: set it to the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return env.strip().encode("utf-8")
    path = state_dir / SECRET_FILE
    if not path.exists():
        _create_secret(state_dir, path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise TokenError(f"cannot read the signing key: {exc.strerror or exc}", path=path) from None
    if len(key) < MIN_SECRET:
        raise TokenError(
            f"the signing key is shorter than {MIN_SECRET} characters; delete it to make a new one "
            f"(links already sent stop working) or set {SECRET_ENV}",
            path=path,
        )
    return key


def _create_secret(state_dir: Path, path: Path) -> None:
    """Write a new random key; when processes race, the first one's key is everyone's."""
    candidate = state_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_urlsafe(32).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
    except OSError as exc:  # a full disk, a read-only state folder: one line, and no key half-written
        raise TokenError(
            f"cannot write a new signing key: {exc.strerror or exc} (or set {SECRET_ENV})", path=path
        ) from None
    finally:
        with contextlib.suppress(OSError):
            candidate.unlink(missing_ok=True)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode  # made once


@functools.lru_cache(maxsize=16)  # a message signs its reader's unsubscribe token twice (link and mailto)
def make_token(secret: bytes, payload: TokenPayload) -> str:
    if payload.purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {payload.purpose!r}")
    body: dict[str, object] = {"e": payload.email, "p": payload.purpose}
    if payload.expires is not None:
        body["x"] = payload.expires
    if payload.sections is not None:
        body["s"] = list(payload.sections)
    raw = _encode(body).encode()
    return f"{_b64(raw)}.{_b64(_sign(secret, raw))}"


def read_token(secret: bytes, token: str, *, purpose: str, now: float) -> TokenPayload:
    """Check a token's signature, purpose and expiry; raise :class:`TokenError` if any is wrong."""
    try:
        raw_b64, sig_b64 = token.split(".")
        raw, signature = _unb64(raw_b64), _unb64(sig_b64)
    except (ValueError, TypeError):
        raise TokenError("this link is malformed") from None
    if not hmac.compare_digest(signature, _sign(secret, raw)):
        raise TokenError("this link is not valid")
    try:
        body = json.loads(raw)
        payload = TokenPayload(
            email=str(body["e"]),
            purpose=str(body["p"]),
            expires=int(body["x"]) if "x" in body else None,
            sections=tuple(body["s"]) if "s" in body else None,
        )
    except (ValueError, KeyError, TypeError):
        raise TokenError("this link is not valid") from None
    if payload.purpose != purpose:
        raise TokenError("this link is for something else")
    if payload.expires is not None and now > payload.expires:
        raise TokenError("this link has expired")
    return payload


def stable_hash(secret: bytes, *parts: str) -> str:
    """A keyed, stable hex digest (Message-IDs, rate-limit keys) that reveals nothing of its input."""
    return hmac.digest(secret, "\x00".join(parts).encode("utf-8"), "sha256").hex()


def message_id_digest(secret: bytes, issue_key: str, address: str, round_: int = 1) -> str:
    """The local part of the Message-ID digest gives one issue's message to one address.

    Keyed by the secret, so a report quoting it shows the message was digest's and
    whom it went to, without a lookup in the ledgers.
    """
    parts = [issue_key, address.lower()] + ([str(round_)] if round_ > 1 else [])
    return stable_hash(secret, "message-id", *parts)[:32]


def _sign(secret: bytes, raw: bytes) -> bytes:
    return hmac.digest(secret, b"digest-token\x00" + raw, "sha256")[:20]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
