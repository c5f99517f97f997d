"""Sets of addresses held as fixed-size digests, so a million of them fit in about 20 MB.

A send keeps who is done and who is listed twice for every subscriber: as
Python strings in a set that is over 100 bytes an address, as ints in a set
about 50; here it is the 8-byte blake2b of the address key in an
open-addressing table (``array('Q')``, at most half full) with a byte beside
each: 18 bytes an address at worst. Two addresses share a digest with a
probability of about n²/2⁶⁵ (under 10⁻⁷ for a million): the cost would be one
line reported as listed twice, or one recipient taken as done.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import Counter
from collections.abc import Iterable

__all__ = ["DigestMap", "KeySet", "key_digest"]


def key_digest(key: str) -> int:
    """The 8-byte blake2b of an address key, as a non-zero int (0 marks an empty slot)."""
    digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
    return digest or 1


class DigestMap:
    """Digest -> a small value (1-255), in flat arrays: memory grows 18 bytes a key, no object per key."""

    __slots__ = ("_keys", "_used", "_values")

    def __init__(self, capacity: int = 1024):
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._keys = array("Q", bytes(8 * size))
        self._values = bytearray(size)
        self._used = 0

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, len(self._keys) - 1
        slot = digest & mask
        while (found := keys[slot]) != digest and found:
            slot = (slot + 1) & mask
        return slot

    def get(self, digest: int) -> int:
        """The value of ``digest`` (0: not there)."""
        return self._values[self._slot(digest)]

    def put(self, digest: int, value: int) -> bool:
        """Set the value of ``digest``; whether it was not there before."""
        slot = self._slot(digest)
        new = not self._keys[slot]
        if new:
            if 2 * (self._used + 1) > len(self._keys):
                self._grow()
                slot = self._slot(digest)
            self._keys[slot] = digest
            self._used += 1
        self._values[slot] = value
        return new

    def _grow(self) -> None:
        keys, values = self._keys, self._values
        self._keys = array("Q", bytes(16 * len(keys)))
        self._values = bytearray(2 * len(values))
        for digest, value in zip(keys, values, strict=True):
            if digest:
                slot = self._slot(digest)
                self._keys[slot] = digest
                self._values[slot] = value

    def __len__(self) -> int:
        return self._used

    def counts(self) -> Counter[int]:
        """How many keys hold each value."""
        return Counter(v for k, v in zip(self._keys, self._values, strict=True) if k)


class KeySet:
    """A set of address keys by digest; with ``of``, the keys of that map whose value is one of ``values``."""

    __slots__ = ("_map", "_own", "_values")

    def __init__(self, keys: Iterable[str] = (), *, of: DigestMap | None = None, values: Iterable[int] = ()):
        self._own = of is None
        self._map = DigestMap() if of is None else of
        self._values = frozenset({1}) if of is None else frozenset(values)
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        assert self._own, "a view of a map is read-only"
        self._map.put(key_digest(key), 1)

    def add_new(self, key: str) -> bool:
        """Add ``key``; False if it was there already (one digest and one probe, not two of each)."""
        assert self._own, "a view of a map is read-only"
        return self._map.put(key_digest(key), 1)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._map.get(key_digest(key)) in self._values

    def __len__(self) -> int:
        if self._own:
            return len(self._map)
        counts = self._map.counts()
        return sum(counts[v] for v in self._values)
