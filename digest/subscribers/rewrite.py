"""Folding the journal into the list: one locked, streaming, byte-preserving rewrite.

Under the list's lock, line by line into a temporary file that is fsynced and
renamed over the list, keeping every line it did not change byte for byte,
including the ones it could not parse, in their place, and the file's byte order
mark and line endings. If someone edits the file meanwhile (an editor does not
take the lock), the rewrite starts again from their version: the list is checked
once more just before the rename, so a hand save is never overwritten. Whatever a
killed fold or index rebuild left beside the list is removed by the next one
(:func:`sweep_leftovers`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from digest.fsutil import atomic_write, file_lock, write_error
from digest.subscribers.index import STALE, IndexBuilder, IndexRow, lookup_index
from digest.subscribers.journal import (
    Change,
    Journal,
    SubscriberUnavailable,
    mark_fold,
    read_journal,
    record_erased,
    settle_journal,
    unmark_fold,
)
from digest.subscribers.keys import KeySet
from digest.subscribers.model import HEADER, Problem, Subscriber, csv_line, format_row, full_header
from digest.subscribers.reading import ListScan, Overlay, Row, list_signature

__all__ = [
    "KEEP",
    "LOCK_WAIT",
    "REWRITE_ATTEMPTS",
    "list_lock",
    "rewrite_list",
    "rewritten_list",
    "swallowing_error",
    "sweep_leftovers",
]


LOCK_WAIT = 30.0
REWRITE_ATTEMPTS = 5


KEEP = object()  # what an edit returns for a line it leaves alone


class _EditedMeanwhile(Exception):
    """The list changed under the rewrite just before its rename: do it again on the new text."""


def list_lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """The lock every rewrite of the list and of its index holds."""
    return file_lock(path.with_name(f".{path.name}.lock"), what="the subscriber list", wait=LOCK_WAIT)


def _leftover_names(path: Path) -> re.Pattern[str]:
    """The temporary files a rewrite, an index rebuild or a journal rewrite makes beside the list."""
    name = re.escape(path.name)
    made = rf"^(?:\.{name}\.(?:index\.)?|\.\.{name}\.journal\.)[a-z0-9_]{{8}}\.tmp$"
    return re.compile(made + r"|^\.digest-list-")


def sweep_leftovers(path: Path) -> list[Path]:
    """Remove the temporary files of rewrites that were killed; the lock must be held (so none is live).

    A fold killed before its rename left a header in the journal naming its
    temporary file: the header is taken back first, so every change stays pending.
    """
    names = _leftover_names(path)
    try:
        found = [entry for entry in path.parent.iterdir() if names.match(entry.name)]
    except OSError:
        return []
    if not found:
        return []
    journal = read_journal(path)
    if journal.folding and journal.renamed is False:
        unmark_fold(path)
    for entry in found:
        with contextlib.suppress(OSError):
            entry.unlink()
    return found


def rewrite_list(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None = None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None = None,
) -> bool:
    """Fold the journal into the list, with ``edit`` and ``append``, under its lock; True if it changed.

    ``edit`` gets each subscriber and returns ``KEEP``, a changed ``Subscriber``,
    or None to erase the record; ``append`` gets every address on the list (with
    the line it is on, negative when that line cannot be read) and returns the
    subscribers to add at the end. Records that do not parse, blank lines and
    records left alone are written back exactly as they were, line endings
    included. If someone edits the file meanwhile (an editor does not take the
    lock), the rewrite starts again from their version. The index is rebuilt
    for the new list before it is renamed into place.
    """
    with list_lock(path):
        sweep_leftovers(path)
        for _ in range(REWRITE_ATTEMPTS):
            changed = _attempt(path, known, edit, append)
            if changed is not None:
                return changed
    raise SubscriberUnavailable("the list keeps changing while digest rewrites it; try again", path=path)


def _attempt(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None,
) -> bool | None:
    """One try at the rewrite (the lock held): whether the list changed, None if a hand edit came between."""
    before = list_signature(path)
    journal = read_journal(path)
    changes = journal.pending(before)
    stale = before is not None and lookup_index(path, before, "") is STALE
    if not (stale or changes or edit or append):  # nothing to write, and the index describes the list
        if journal.changes:
            settle_journal(path, journal.last, ())  # what is left was folded by a fold cut short
        return False
    with IndexBuilder(path) as index:
        result = rewritten_list(path, known, edit, append, changes, index)
        try:
            changed = _write_back(path, before, journal, changes, index, result, stale)
        finally:
            result.close()
    if changed is not None and journal.changes:
        settle_journal(path, journal.last, result.kept)
    return changed


def _write_back(
    path: Path,
    before: tuple[int, int, int] | None,
    journal: Journal,
    changes: Sequence[Change],
    index: IndexBuilder,
    result: _Rewritten,
    stale: bool,
) -> bool | None:
    """Put the rewritten list and its index in place; False if nothing changed, None if a hand edit came."""
    if list_signature(path) != before:
        return None  # changed under us by a hand edit: do it again on the new text
    if result.write is None:
        if stale:
            index.finish(before)
        return False

    def ready(tmp: Path) -> None:
        index.finish(_signature_of(tmp))
        if list_signature(path) != before:
            raise _EditedMeanwhile
        if changes:
            record_erased(path, [c.key for c in changes if c.op == "erase"])
            mark_fold(path, journal.last, before, result.kept, changes, tmp.name)
            if list_signature(path) != before:  # saved by hand while the header was written
                unmark_fold(path)
                raise _EditedMeanwhile

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    try:
        atomic_write(path, result.write, mode=mode, before_replace=ready)
    except _EditedMeanwhile:
        return None
    return True


def _signature_of(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _Rewritten:
    """A rewrite's result: what writes the new text (None if unchanged), the changes it could not apply."""

    write: Callable[[BinaryIO], None] | None
    kept: set[int]
    found: IndexRow | None = None  # the record of the address asked for
    close: Callable[[], None] = lambda: None  # frees the records put aside for ``write``


class _Writer:
    """The new list being put together, record by record, with the index of where each address is.

    Memory stays flat in the size of the list: the records go to a temporary
    file beside it as they come (copied into the new list after the header, which
    is known only at the end), and which addresses were seen is a set of digests.
    """

    def __init__(
        self,
        scan: ListScan,
        index: IndexBuilder | None,
        want: str | None,
        *,
        lean: bool = False,
        keys: bool = False,
    ):
        self.scan = scan
        self.index = index
        self.want = want
        self.found: IndexRow | None = None
        self.lean = lean  # only the index is rebuilt: nothing is written back
        self._spool: BinaryIO | None = None
        self._open_line = False  # the last record written has no line ending (the file's last line)
        self.seen = KeySet()
        # keys: every address with its line (negative when unreadable), for ``append`` (an import)
        self.keys: dict[str, int] | None = {} if keys else None
        self.line = 2  # the line the next record starts on
        self.shift = 0  # new line minus old line, for the lines inside the last record
        self.changed = self.formatted = False

    def keep(self, row: Row, problem: Problem | None) -> None:
        old = problem.line if problem else (row.subscriber.line if row.subscriber else 0)
        if row.text:
            self.shift = self.line - old if old else self.shift
        line = self.line if row.text else old + self.shift
        self._note(row.key, row.subscriber, problem, line)
        if not self.lean:
            self._emit(row.text)
        self.line += row.text.count("\n")

    def put(self, subscriber: Subscriber, original: str = "") -> None:
        assert not self.lean, "a lean rewrite writes nothing back"
        header = self.scan.header
        if not original and self._open_line:
            self._emit(self.scan.newline)
        text = format_row(full_header(header), subscriber, original, header) + self.scan.newline
        self._note(subscriber.key, replace(subscriber, line=self.line), None, self.line)
        self._emit(text)
        self.line += 1
        self.changed = self.formatted = True

    def drop(self, key: str) -> None:
        """A record erased: the list changed, and the address counts as seen (it is not added back)."""
        self.changed = True
        self._seen(key, 0)

    def listed(self, key: str) -> bool:
        return key in self.seen

    def _emit(self, text: str) -> None:
        if not text:
            return
        try:
            if self._spool is None:  # closed by close(), once the new list is written from it
                self._spool = tempfile.TemporaryFile(dir=self.scan.path.parent, prefix=".digest-list-")  # noqa: SIM115
            self._spool.write(text.encode("utf-8"))
        except OSError as exc:  # a full disk, a read-only folder: the list is left as it was
            raise write_error(self.scan.path, exc) from None
        self._open_line = not text.endswith("\n")

    def _seen(self, key: str, line: int) -> bool:
        """Note ``key``; False if it was seen before (an address's first record is the one that counts)."""
        first = key not in self.seen
        if first:
            self.seen.add(key)
            if self.keys is not None:
                self.keys[key] = line
        return first

    def _note(
        self, key: str | None, subscriber: Subscriber | None, problem: Problem | None, line: int
    ) -> None:
        if key is None or not self._seen(key, -line if problem is not None else line):
            return
        if self.index is None and key != self.want:
            return
        if subscriber is None or problem is not None:
            row = IndexRow(key, line, False)
        else:
            sections = ";".join(sorted(subscriber.sections))
            fields = (subscriber.email, subscriber.name, sections, subscriber.status, subscriber.since)
            row = IndexRow(key, line, True, *fields)
        if self.index is not None:
            self.index.add(row)
        if key == self.want:
            self.found = row

    def write(self, handle: BinaryIO) -> None:
        """The new list: its header, then the records as they were put together."""
        scan = self.scan
        header = scan.header_text or ",".join(HEADER) + scan.newline
        if self.formatted and full_header(scan.header) != scan.header:
            original = next(csv.reader([header.rstrip("\r\n")]))
            added = [column for column in HEADER if column not in scan.header]
            header = csv_line([*original, *added]) + scan.newline
        handle.write((codecs.BOM_UTF8 if scan.bom else b"") + header.encode("utf-8"))
        if self._spool is not None:
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, handle, 1 << 20)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def rewritten_list(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None,
    changes: Sequence[Change] = (),
    index: IndexBuilder | None = None,
    want: str | None = None,
) -> _Rewritten:
    scan = ListScan(path, known)
    overlay = Overlay(changes)
    writer = _Writer(scan, index, want, lean=not (changes or edit or append), keys=append is not None)
    kept: set[int] = set()
    for row, problem in scan:
        subscriber = row.subscriber
        if subscriber is None:
            if row.key in overlay:
                kept |= overlay.seqs(row.key)  # its record cannot be read: wait until it is fixed
            writer.keep(row, problem)
            continue
        result: object = subscriber
        if subscriber.key in overlay:
            result = overlay.apply(subscriber.key, subscriber)
        if result is not None and edit is not None:
            chosen = edit(result)  # type: ignore[arg-type]
            result = result if chosen is KEEP else chosen
        if result is None:
            writer.drop(subscriber.key)
        elif result == subscriber:
            writer.keep(row, problem)
        else:
            assert isinstance(result, Subscriber)
            writer.put(result, row.text)
    for key in overlay.changes:
        if not writer.listed(key) and (added := overlay.apply(key, None)) is not None:
            if scan.unclosed is not None:  # a line added now would be swallowed: keep it pending
                kept |= overlay.seqs(key)
                continue
            writer.put(added)
    for subscriber in append(writer.keys or {}) if append is not None else []:
        if scan.unclosed is not None:
            raise swallowing_error(path, scan.unclosed)
        writer.put(subscriber)
    if index is not None:
        index.unclosed = scan.unclosed
    return _Rewritten(writer.write if writer.changed else None, kept, writer.found, writer.close)


def swallowing_error(path: Path, line: int) -> SubscriberUnavailable:
    return SubscriberUnavailable(
        "the record on this line has a quote left open to the end of the list, so a line added "
        "after it could not be read; fix it first (nothing was changed)",
        path=path,
        line=line,
    )
