"""One error hierarchy for everything digest refuses to do.

Every error is meant to be shown to a person as a single line, so each message
says what went wrong, where (file and line when there is one) and how to fix it.
The CLI prints ``digest: <message>`` and exits with :attr:`DigestError.exit_code`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "DeliveryError",
    "DigestError",
    "HeaderError",
    "IssueNotFound",
    "LockBusy",
    "ParseError",
    "ReleaseError",
    "StateError",
    "SubscriberError",
    "TemplateError",
    "TokenError",
    "TransportError",
]


class DigestError(Exception):
    """Root of every error digest raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.message}"


class ConfigError(DigestError):
    """The configuration file is missing, unreadable or invalid."""


class ParseError(DigestError):
    """An issue file cannot be read as an issue at all (unreadable, or no date anywhere)."""


class IssueNotFound(DigestError):
    """An ISSUE argument names no file in ``[paths] issues``."""


class StateError(DigestError):
    """Remembered state cannot be read or written."""


class LockBusy(DigestError):
    """Another digest process holds the lock this one needs."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class SubscriberError(DigestError):
    """The subscriber list cannot be read or changed as asked."""


class HeaderError(DigestError):
    """A value would break or inject a mail header."""


class TemplateError(DigestError):
    """An email template is missing or fails to render."""


class TokenError(DigestError):
    """A signed token is forged, altered, expired or for another purpose."""


class ReleaseError(DigestError):
    """An issue cannot be approved, held or sent in its current state."""


class TransportError(DigestError):
    """The mail transport cannot be reached or refuses the connection.

    ``code`` carries the SMTP reply code when the server gave one.
    """

    def __init__(self, message: str, *, code: int | None = None, **where: object):
        self.code = code
        super().__init__(message, **where)  # type: ignore[arg-type]


class DeliveryError(DigestError):
    """A send stopped before every recipient had an outcome (the ledger keeps what was done)."""

    def __init__(self, message: str, *, code: int | None = None):
        self.code = code
        super().__init__(message)
