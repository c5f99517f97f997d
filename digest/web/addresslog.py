"""When each address last did something through ``digest serve``, kept in the state directory.

Two uses: no second confirmation mail to one address within a window, and no
confirmation link issued before an address joined or left that still works
after. Addresses are stored only as keyed hashes; the file is locked for each
change and written atomically; entries too old to matter are dropped on write.
"""

from __future__ import annotations

from pathlib import Path

from digest.fsutil import file_lock, read_json, write_json
from digest.mail.tokens import stable_hash

__all__ = ["AddressTimes"]


class AddressTimes:
    """A JSON map of hashed address -> time (seconds since the epoch), for one ``purpose``."""

    def __init__(self, path: Path, secret: bytes, purpose: str, *, what: str, keep: float):
        self.path = path
        self.secret = secret
        self.purpose = purpose
        self.what = what
        self.keep = keep

    def _key(self, email: str) -> str:
        return stable_hash(self.secret, self.purpose, email.lower())[:32]

    def _read(self) -> dict[str, float]:
        data = read_json(self.path, what=self.what) or {}
        if not isinstance(data, dict):
            return {}
        return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}

    def last(self, email: str) -> float | None:
        """When ``email`` was last noted, None when never (or too long ago to be kept)."""
        return self._read().get(self._key(email))

    def note(self, email: str, now: float, *, unless_within: float | None = None) -> bool:
        """Note ``email`` at ``now``, durably; False (nothing written) when noted within ``unless_within``."""
        key = self._key(email)
        with file_lock(self.path.with_suffix(".lock"), what=self.what, wait=10):
            times = {k: v for k, v in self._read().items() if now - v <= self.keep}
            if unless_within is not None and key in times and now - times[key] < unless_within:
                return False
            times[key] = now
            write_json(self.path, times)
        return True
