"""The delivery ledger: append-only files per issue, one line per recipient outcome.

A line is written only after the server has answered for that message, and is
flushed and fsynced before the worker that sent it ends its next message (the final
dot: a server delivers nothing it has not seen the end of).
So after a crash the ledger knows every message that was accepted, except at
most the ones in flight (one per connection), and a re-run skips the rest.
Lines are JSON; a torn last line (the crash came mid-write) is cut off on open.

A send that runs in several processes writes one file per process (a shard:
``<stem>.jsonl``, ``<stem>.1.jsonl`` ...); reading merges them.

Statuses: ``sent`` (accepted), ``failed`` (permanently refused, 5xx),
``deferred`` (temporary failures exhausted the retries; tried again next run),
``skipped`` (nothing to send: the subscriber's sections have no items).
``sent``, ``failed`` and ``skipped`` are final for the round; ``--resend``
starts a new round.

The recipients of a round are fixed when it starts: ``<stem>.round<N>.due``
holds every subscriber who was due (one JSON line each, then a line with the
count), written atomically before the first message. A round resumed after a
crash sends to the rest of them, whatever the list looks like by then, and it
is not marked finished while any of them has no outcome.

A round that ran to the end gets a marker line with its counts, so knowing
where a mailed issue stands (every ``digest run`` and ``digest status`` asks,
for every issue) reads the last line of one file, not every recipient's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from digest.errors import StateError
from digest.fsutil import file_lock, fsync_directory
from digest.subscribers.keys import DigestMap, KeySet, key_digest

__all__ = [
    "FINAL",
    "LedgerSummary",
    "LedgerTally",
    "Outcome",
    "RoundScan",
    "ledger_path",
    "ledger_stems",
    "read_due",
    "read_ledger",
    "read_recipients",
    "read_tally",
    "recipients_path",
    "scan_round",
    "send_lock",
    "shard_sizes",
    "write_recipients",
]

FINAL = frozenset({"sent", "failed", "skipped"})
LEDGER_DIR = "ledger"
_RANK = {"deferred": 0, "skipped": 1, "failed": 2, "sent": 3}
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode  # one encoder for every line
_SHARD = re.compile(r"^(?P<stem>.+?)(?:\.(?P<shard>\d+))?\.jsonl$")


def ledger_path(state_dir: Path, stem: str, shard: int = 0) -> Path:
    name = f"{stem}.jsonl" if shard == 0 else f"{stem}.{shard}.jsonl"
    return state_dir / LEDGER_DIR / name


def _shard_files(state_dir: Path, stem: str) -> list[Path]:
    directory = state_dir / LEDGER_DIR
    shards = [
        p for p in directory.glob(f"{stem}.*.jsonl") if (m := _SHARD.match(p.name)) and m["stem"] == stem
    ]
    return [ledger_path(state_dir, stem), *sorted(shards)]


def ledger_stems(state_dir: Path) -> list[str]:
    """Every issue that has a ledger, in name order."""
    stems = {m["stem"] for p in (state_dir / LEDGER_DIR).glob("*.jsonl") if (m := _SHARD.match(p.name))}
    return sorted(stems)


def send_lock(state_dir: Path, stem: str) -> contextlib.AbstractContextManager[None]:
    """Held for the whole of a send: a second sender of the same issue is refused."""
    return file_lock(state_dir / LEDGER_DIR / f"{stem}.lock", what=f"sending {stem}", wait=0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recipient's result."""

    to: str
    status: str
    code: int | None = None
    message_id: str = ""
    detail: str = ""
    round: int = 1
    at: str = ""

    @property
    def refused(self) -> bool:
        """The server refused this recipient for good (a 5xx reply): what counts towards a bounce."""
        return self.status == "failed" and self.code is not None

    def line(self) -> bytes:
        record: dict[str, Any] = {"to": self.to, "status": self.status, "round": self.round, "at": self.at}
        if self.code is not None:
            record["code"] = self.code
        if self.message_id:
            record["message_id"] = self.message_id
        if self.detail:
            record["detail"] = self.detail[:300]
        return _encode(record).encode() + b"\n"


@dataclass(frozen=True)
class LedgerTally:
    """How many recipients of the current round ended how: all that status and release need."""

    round: int
    counts: dict[str, int]  # status -> recipients
    finished: bool = False  # the round's send ran to the end with nothing deferred
    exists: bool = False  # a send of this issue has begun
    due: int | None = field(default=None, compare=False)  # due when the round started (None: unknown)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(n for status, n in self.counts.items() if status in FINAL)


@dataclass(frozen=True)
class LedgerSummary:
    """What the ledger says about the current round, recipient by recipient."""

    round: int
    outcomes: dict[str, Outcome]  # recipient (lower case) -> its outcome this round
    started: bool = False  # the round has a start marker (a --resend)
    finished: bool = False  # the round's send ran to the end with nothing deferred

    def done(self) -> set[str]:
        return {to for to, o in self.outcomes.items() if o.status in FINAL}

    @property
    def refused(self) -> frozenset[str]:
        """The recipients refused for good this round (what bounce marking looks at)."""
        return frozenset(to for to, o in self.outcomes.items() if o.refused)

    @property
    def exists(self) -> bool:
        return bool(self.outcomes) or self.started or self.finished

    def tally(self) -> LedgerTally:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return LedgerTally(self.round, counts, self.finished, self.exists)


def _records(path: Path, select: re.Pattern[bytes] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON lines of one file; with ``select``, only the lines it matches (the rest is not parsed)."""
    for raw in _lines(path, select):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # a torn line from a crash: that message counts as not done
        if isinstance(record, dict):
            yield record


def _lines(path: Path, select: re.Pattern[bytes] | None = None) -> Iterator[bytes]:
    """The raw lines of one file: streamed, or (with ``select``) the matching ones from one read."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(f"cannot read the delivery ledger: {exc.strerror or exc}", path=path) from None
    with handle:
        try:
            if select is not None:
                yield from _selected_lines(handle.read(), select)
            else:
                yield from handle
        except OSError as exc:
            raise StateError(f"cannot read the delivery ledger: {exc.strerror or exc}", path=path) from None


def _selected_lines(data: bytes, select: re.Pattern[bytes]) -> Iterator[bytes]:
    end = -1
    for match in select.finditer(data):
        if match.start() < end:
            continue  # a second match on a line already taken
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        end = len(data) if end < 0 else end
        yield data[start:end]


def _selector(addresses: Collection[str]) -> re.Pattern[bytes]:
    """Round markers, and the outcome lines of these addresses (as JSON writes them)."""
    quoted = sorted(re.escape(json.dumps(a.lower(), ensure_ascii=False)[1:-1].encode()) for a in addresses)
    return re.compile(rb'"(?:start|finished)_round"|"to"\s*:\s*"(?:' + b"|".join(quoted) + rb')"', re.I)


def _outcome(record: dict[str, Any]) -> Outcome | None:
    try:
        return Outcome(
            to=str(record["to"]).lower(),
            status=str(record["status"]),
            code=record.get("code"),
            message_id=str(record.get("message_id", "")),
            detail=str(record.get("detail", "")),
            round=int(record.get("round", 1)),
            at=str(record.get("at", "")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_ledger(state_dir: Path, stem: str, only: Collection[str] | None = None) -> LedgerSummary:
    """Every recipient's outcome in the latest round (or just those of ``only``), merged over the shard files.

    When a recipient appears twice (a deferred message delivered on a later
    run), the most final outcome wins: sent, then failed, skipped, deferred.
    """
    files = _shard_files(state_dir, stem)
    select = _selector(only) if only is not None else None
    current, started, finished = 1, False, set()
    for record in _records(files[0], select):
        if isinstance(number := record.get("start_round"), int):
            current, started = number, True
        elif isinstance(number := record.get("finished_round"), int):
            finished.add(number)
    outcomes: dict[str, Outcome] = {}
    for path in files:
        for record in _records(path, select):
            outcome = _outcome(record) if "to" in record else None
            if outcome is None or outcome.round != current:
                continue
            known = outcomes.get(outcome.to)
            if known is None or _RANK.get(outcome.status, -1) >= _RANK.get(known.status, -1):
                outcomes[outcome.to] = outcome
    return LedgerSummary(current, outcomes, started, current in finished)


@dataclass(frozen=True)
class RoundScan:
    """The current round counted in one streaming pass: digests of who ended how, not an object each.

    What a send needs of a ledger that may hold a million lines: the counts, who
    is done (``final``), who has any outcome (``reached``), and the few
    addresses refused for good (``refused``, for bounce marking).
    """

    round: int
    best: DigestMap  # digest of a recipient -> 1 + the index in ``statuses`` of its most final outcome
    statuses: tuple[str, ...]
    refused: frozenset[str]
    started: bool = False
    finished: bool = False

    @property
    def exists(self) -> bool:
        return bool(len(self.best)) or self.started or self.finished

    @property
    def final(self) -> KeySet:
        codes = [n + 1 for n, status in enumerate(self.statuses) if status in FINAL]
        return KeySet(of=self.best, values=codes)

    @property
    def reached(self) -> KeySet:
        return KeySet(of=self.best, values=range(1, len(self.statuses) + 1))

    def tally(self) -> LedgerTally:
        counts = {self.statuses[code - 1]: n for code, n in self.best.counts().items()}
        return LedgerTally(self.round, counts, self.finished, self.exists)


def scan_round(state_dir: Path, stem: str) -> RoundScan:
    """:func:`read_ledger`'s merge (the most final outcome wins), streamed into a table of digests."""
    files = _shard_files(state_dir, stem)
    current, started, finished = 1, False, set()
    for raw in _lines(files[0]):
        if b'_round"' in raw and isinstance(record := _json(raw), dict):  # a marker line
            if isinstance(number := record.get("start_round"), int):
                current, started = number, True
            elif isinstance(number := record.get("finished_round"), int):
                finished.add(number)
    statuses: list[str] = list(_RANK)
    best, refused = DigestMap(), set()
    for path in files:
        for record in _records(path):
            outcome = _outcome(record) if "to" in record else None
            if outcome is None or outcome.round != current:
                continue
            if outcome.status not in statuses:
                if len(statuses) >= 255:
                    continue  # a ledger of made-up statuses: they count for nothing
                statuses.append(outcome.status)
            digest = key_digest(outcome.to)
            known = best.get(digest)
            if known and _RANK.get(outcome.status, -1) < _RANK.get(statuses[known - 1], -1):
                continue  # a more final outcome is known
            best.put(digest, statuses.index(outcome.status) + 1)
            (refused.add if outcome.refused else refused.discard)(outcome.to)
    return RoundScan(current, best, tuple(statuses), frozenset(refused), started, current in finished)


def _json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def read_tally(state_dir: Path, stem: str) -> LedgerTally:
    """The current round's counts: from the finish marker when it is the last line, else by reading it all.

    Nothing is appended to a ledger after its finish marker except by a new send
    (which writes a newer marker, or outcome lines here or in a shard file), so a
    marker on the last line, with every shard file still the size it records,
    describes the current round.
    """
    marker = _last_record(ledger_path(state_dir, stem))
    counts = marker.get("counts") if marker else None
    if (
        marker
        and "finished_round" in marker
        and isinstance(counts, dict)
        and marker.get("shards", {}) == shard_sizes(state_dir, stem)
    ):
        try:
            tally = {str(status): int(n) for status, n in counts.items()}
            return LedgerTally(int(marker["finished_round"]), tally, finished=True, exists=True)
        except (TypeError, ValueError):
            pass  # a hand-edited marker: count the lines instead
    tally = scan_round(state_dir, stem).tally()
    return replace(tally, due=read_due(recipients_path(state_dir, stem, tally.round)))


def recipients_path(state_dir: Path, stem: str, round_: int) -> Path:
    """Where the recipients of one round are kept (beside its ledger)."""
    return state_dir / LEDGER_DIR / f"{stem}.round{round_}.due"


def write_recipients(path: Path, recipients: Iterable[Mapping[str, Any]]) -> int:
    """Write a round's recipients (streamed; fsynced, then renamed into place); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for recipient in recipients:
                handle.write(_encode(recipient).encode() + b"\n")
                count += 1
            handle.write(json.dumps({"due": count}).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise StateError(f"cannot write the round's recipients: {exc.strerror or exc}", path=path) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)
    return count


def read_recipients(path: Path) -> Iterator[dict[str, Any]]:
    """The recipients of a round, as written by :func:`write_recipients`."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise StateError(f"cannot read the round's recipients: {exc.strerror or exc}", path=path) from None
    with handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise StateError("the round's recipients are damaged", path=path) from None
            if isinstance(record, dict) and "key" in record:
                yield record


def read_due(path: Path) -> int | None:
    """How many recipients a round's snapshot holds, from its last line (None: unknown)."""
    record = _last_record(path)
    due = record.get("due") if record else None
    return due if isinstance(due, int) else None


def shard_sizes(state_dir: Path, stem: str) -> dict[str, int]:
    """The size of each shard file past the main one (what a finish marker records)."""
    sizes = {}
    for path in _shard_files(state_dir, stem)[1:]:
        with contextlib.suppress(FileNotFoundError):
            sizes[path.name] = path.stat().st_size
    return sizes


def _last_record(path: Path, window: int = 4096) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - window))
            tail = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the delivery ledger: {exc.strerror or exc}", path=path) from None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    try:
        record = json.loads(lines[-1])
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None
