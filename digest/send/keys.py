"""Sets of addresses held as fixed-size digests, so a million of them fit in a few tens of MB.

A send keeps who is done and who is listed twice for every subscriber: as
strings that is over 100 bytes an address; as the 8-byte blake2b of the
address key (a Python int) about 50. Two addresses share a digest with a
probability of about n²/2⁶⁵ (under 10⁻⁷ for a million): the cost would be one
line reported as listed twice, or one recipient taken as done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["KeySet", "key_digest"]


def key_digest(key: str) -> int:
    """The 8-byte blake2b of an address key, as an int."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


class KeySet:
    """Addresses by digest; membership over one or more disjoint sets of digests (shared, not copied)."""

    __slots__ = ("_parts",)

    def __init__(self, keys: Iterable[str] = (), *, parts: Iterable[set[int]] = ()):
        own = {key_digest(k) for k in keys}
        self._parts = (own, *parts)

    def add(self, key: str) -> None:
        self._parts[0].add(key_digest(key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        digest = key_digest(key)
        return any(digest in part for part in self._parts)

    def __len__(self) -> int:
        return sum(len(part) for part in self._parts)
