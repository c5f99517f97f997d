"""Appending to a shard file of the delivery ledger: group-committed, fsynced outcome lines.

The lines of every worker that finished in the same turn of the event loop, or
while the previous fsync ran, go out in one write and one fsync. A worker waits
for its own line only before its next message's final dot (see
:mod:`digest.send.shard`), so a crash loses at most the messages in flight, one
per connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import functools
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digest.errors import StateError
from digest.send.ledger import LedgerTally, Outcome

__all__ = ["LedgerWriter"]

REPAIR_BLOCK = 1 << 16
QUICK_FSYNC = 0.002  # seconds: an fsync quicker than this is made on the event loop
_Batch = list[tuple[bytes, asyncio.Future[None]]]  # ledger lines, and the workers waiting for them


class LedgerWriter:
    """One open shard file: group-committed, fsynced appends."""

    def __init__(self, path: Path, quick_fsync: float = QUICK_FSYNC):
        self.path = path
        self.quick_fsync = quick_fsync  # 0: every fsync in the thread
        self._fd = -1
        self._pending: _Batch = []
        self._committing = False  # a batch is written and its fsync not yet back
        self._syncer: concurrent.futures.ThreadPoolExecutor | None = None
        self._quick = quick_fsync > 0  # the last fsync was quick: the next runs on the event loop
        self.commits = 0  # fsyncs of outcome lines, and the lines they made durable
        self.lines = 0

    def __enter__(self) -> LedgerWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)  # an fsync still running finishes before the file closes
            self._syncer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _repair(self) -> None:
        """Cut a torn last line so the next append starts on a line of its own.

        Only the end of the file is read (a ledger of a million lines is over 100 MB).
        """
        with contextlib.suppress(FileNotFoundError), self.path.open("rb+") as handle:
            end = handle.seek(0, os.SEEK_END)
            if not end:
                return
            handle.seek(end - 1)
            if handle.read(1) == b"\n":
                return
            cut = 0
            while end > 0:  # back from the end, a block at a time, to the last line ending
                start = max(0, end - REPAIR_BLOCK)
                handle.seek(start)
                newline = handle.read(end - start).rfind(b"\n")
                if newline >= 0:
                    cut = start + newline + 1
                    break
                end = start
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())

    def start_round(self, number: int, now: dt.datetime) -> None:
        self._write_marker({"start_round": number, "at": now.isoformat()})

    def finish_round(
        self, number: int, now: dt.datetime, tally: LedgerTally, shards: Mapping[str, int]
    ) -> None:
        """Mark the round done, with its counts.

        A later run will not resume a finished round for subscribers who joined since.
        """
        self._write_marker(
            {"finished_round": number, "at": now.isoformat(), "counts": tally.counts, "shards": shards}
        )

    def _write_marker(self, marker: dict[str, Any]) -> None:
        """A round's marker line, on disk before the call returns (a send's start or end hangs on it)."""
        self._write(json.dumps(marker, sort_keys=True).encode() + b"\n")
        os.fsync(self._fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def record(self, outcome: Outcome) -> None:
        """Append one outcome; returns once it is on disk."""
        await self.append(outcome)

    def append(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue one outcome; the future is done once its line is on disk (or fails with StateError).

        Group commit: lines are written from the event loop, and the lines of every
        worker that finished in the same turn, or while the previous fsync ran, go
        out in one write and one fsync. Each worker waits for its own line before
        its next message's final dot goes, so a crash still loses at most the messages
        in flight, one per connection. Where the disk answers an fsync in under
        ``QUICK_FSYNC`` the loop makes it itself (handing it to a thread and back
        costs more than that); on a slower disk one fsync at a time runs in a
        thread of its own, so the loop never waits for the disk. Every fsync is
        timed, so a disk that slows down or speeds up moves between the two.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((outcome.line(), future))
        if not self._committing:
            self._committing = True
            loop.call_soon(self._commit)  # after the other workers of this turn have added theirs
        return future

    def _commit(self) -> None:
        """Write the waiting lines and start their fsync; the next batch starts when it is back."""
        batch, self._pending = self._pending, []
        if not batch:
            self._committing = False
            return
        try:
            self._write(b"".join(line for line, _ in batch))
        except OSError as exc:
            self._fail(batch, exc)
            self._committing = False
            return
        if self._quick:
            try:
                self._fsync()
            except OSError as exc:
                self._fail(batch, exc)
            else:
                self._settle(batch)
            self._committing = False  # nothing was added meanwhile: the loop did not run
            return
        if self._syncer is None:
            self._syncer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-fsync")
        synced = asyncio.get_running_loop().run_in_executor(self._syncer, self._fsync)
        synced.add_done_callback(functools.partial(self._committed, batch))

    def _fsync(self) -> None:
        started = time.perf_counter()
        os.fsync(self._fd)
        self._quick = time.perf_counter() - started < self.quick_fsync

    def _committed(self, batch: _Batch, synced: asyncio.Future[None]) -> None:
        error = OSError("the send was cancelled") if synced.cancelled() else synced.exception()
        if error is not None:
            self._fail(batch, error if isinstance(error, OSError) else OSError(str(error)))
        else:
            self._settle(batch)
        self._commit()

    def _settle(self, batch: _Batch) -> None:
        """The batch is on disk: its workers go on."""
        self.commits += 1
        self.lines += len(batch)
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def _fail(self, batch: _Batch, exc: OSError) -> None:
        error = StateError(f"cannot write the delivery ledger: {exc.strerror or exc}", path=self.path)
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
