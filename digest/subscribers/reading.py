"""Reading the list: every record as written, with the journal's pending changes on top.

Reading reports every bad line with its number and skips only that line (a bad
journal line too, by the journal's name and its line number); a quote
left open also reports each line it swallowed that starts with an address.
Memory stays flat: records stream, and which addresses were seen is a set of digests.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.subscribers.journal import (
    Change,
    SubscriberUnavailable,
    read_journal,
)
from digest.subscribers.keys import KeySet
from digest.subscribers.model import HEADER, Problem, Subscriber, address_key, check_email, parse_record

__all__ = [
    "ListScan",
    "Overlay",
    "Row",
    "SubscriberList",
    "iter_subscribers",
    "list_signature",
    "overlaid",
    "read_statuses",
    "read_subscribers",
    "scan_subscribers",
]


@dataclass(frozen=True, slots=True)
class Row:
    """One record as read (its line ending included), and the subscriber when it parsed.

    ``key`` is the record's address when that much could be read, even if another
    field is bad: such an address is on the list, if not mailable, and must not be
    added a second time.
    """

    text: str
    subscriber: Subscriber | None
    key: str | None = None


@dataclass(frozen=True)
class SubscriberList:
    """A whole list read into memory (for listing and export; changes stream instead)."""

    path: Path
    header: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[Problem, ...]

    @property
    def subscribers(self) -> list[Subscriber]:
        return [row.subscriber for row in self.rows if row.subscriber is not None]

    def find(self, email: str) -> Subscriber | None:
        key = address_key(email)
        return next((s for s in self.subscribers if s.key == key), None)


def read_subscribers(path: Path, known_sections: Collection[str]) -> SubscriberList:
    """Read the whole list, the journal applied; a missing file is an empty list."""
    scan = ListScan(path, known_sections)
    rows, problems = [], []
    for row, problem in overlaid(scan):
        rows.append(row)
        if problem:
            problems.append(problem)
    return SubscriberList(path, scan.header, tuple(rows), tuple(problems))


def iter_subscribers(
    path: Path, known_sections: Collection[str], keep: Callable[[str], bool] | None = None
) -> Iterator[Subscriber]:
    """Stream the valid subscribers (the journal applied) without holding the whole list.

    ``keep`` sees each line's address in lower case (normalised when it is valid,
    so two spellings of one address look alike) and can skip the rest of the
    line's checks: a send split over processes takes only its share.
    """
    for row, _ in overlaid(ListScan(path, known_sections, keep)):
        if row.subscriber is not None:
            yield row.subscriber


def scan_subscribers(
    path: Path, known_sections: Collection[str]
) -> Iterator[tuple[Subscriber | None, Problem | None]]:
    """Stream every line as (subscriber, problem): one of them set, or neither for a blank line."""
    for row, problem in overlaid(ListScan(path, known_sections)):
        yield row.subscriber, problem


def read_statuses(path: Path, known_sections: Collection[str]) -> dict[str, str] | None:
    """Every readable address's status in the file (not the journal), or None when it cannot be read.

    A send trusts a status that stops a mail only from such a read: the file is
    there with its header and did not change while it was read. A last line
    without its line break is left out: it may be cut short by an editor
    part-way through saving (``unsub`` of ``unsubscribed``, or an address cut in two).
    """
    try:
        with path.open("rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
            after = os.fstat(handle.fileno())
        current = os.stat(path)
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    stamps = {(st.st_ino, st.st_size, st.st_mtime_ns) for st in (before, after, current)}
    if len(stamps) != 1 or "\n" not in text:
        return None
    try:
        rows = list(ListScan(path, known_sections, text=text[: text.rindex("\n") + 1]))
    except SubscriberError:
        return None
    return {row.key: row.subscriber.status for row, _ in rows if row.subscriber is not None and row.key}


class Overlay:
    """The pending changes of the journal, by address, applied to records as they are read."""

    def __init__(self, changes: Iterable[Change]):
        self.changes: dict[str, list[Change]] = {}
        for change in changes:
            self.changes.setdefault(change.key, []).append(change)

    def __contains__(self, key: object) -> bool:
        return key in self.changes

    def apply(self, key: str, base: Subscriber | None) -> Subscriber | None:
        current = base
        for change in self.changes.get(key, ()):
            fields = {name: change.fields[name] for name in HEADER if name in change.fields}
            fields["sections"] = frozenset(fields.get("sections", current.sections if current else ()))
            if change.op == "erase":
                current = None
            elif current is not None:
                current = replace(current, **fields)
            elif change.op == "add" and fields.get("email"):
                current = Subscriber(**{"name": "", "status": "active", "since": "", **fields})
        return current

    def seqs(self, key: str) -> set[int]:
        return {c.seq for c in self.changes.get(key, ())}


def overlaid(scan: ListScan) -> Iterator[tuple[Row, Problem | None]]:
    """The scan's rows with the journal's pending changes applied, then the addresses it adds."""
    journal = read_journal(scan.path)
    overlay = Overlay(journal.pending(list_signature(scan.path)))
    for problem in journal.problems:  # a journal line of the wrong shape: named, never applied
        yield Row("", None), problem
    seen: set[str] = set()  # only the addresses the journal changes: small
    for row, problem in scan:
        if row.key is not None and row.key in overlay:
            seen.add(row.key)
        if row.subscriber is not None and row.key in overlay:
            row = replace(row, subscriber=overlay.apply(row.key, row.subscriber))
        yield row, problem
    for key in overlay.changes:
        if key in seen or (scan.keep is not None and not scan.keep(key)):
            continue
        added = overlay.apply(key, None)
        if added is not None:
            yield Row("", added, key), None


class _Lines:
    """The file's physical lines for csv.reader, remembering the raw text of the record being read."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.taken: list[str] = []
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self.handle)
        self.number += 1
        self.taken.append(line)
        return line

    def take_lines(self) -> list[str]:
        taken, self.taken = self.taken, []
        return taken


class ListScan:
    """Iterates (row, problem) over the records after the header, as csv reads them (a quoted
    field may span lines); ``header`` is known once iteration has started."""

    def __init__(
        self,
        path: Path,
        known: Collection[str],
        keep: Callable[[str], bool] | None = None,
        text: str | None = None,
    ):
        self.path = path
        self.known = known
        self.keep = keep
        self.text = text  # the list already read (a send's check of the statuses), else read from path
        self.header: tuple[str, ...] = HEADER
        self.header_text = ""
        self.newline = "\n"
        self.bom = False  # the file starts with a UTF-8 byte order mark (a spreadsheet's "CSV UTF-8")
        self.unclosed: int | None = None  # a record whose quote is left open runs to the end of the file

    def __iter__(self) -> Iterator[tuple[Row, Problem | None]]:
        if self.text is not None:
            yield from self._records(io.StringIO(self.text, newline=""))
            return
        try:
            raw = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SubscriberUnavailable(
                f"cannot read the subscriber list: {exc.strerror or exc}", path=self.path
            ) from None
        with raw:
            self.bom = raw.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8
            raw.seek(0)
            handle = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                yield from self._records(handle)
            except UnicodeDecodeError:
                raise SubscriberUnavailable(
                    "the subscriber list is not UTF-8; save it as UTF-8", path=self.path
                ) from None

    def _records(self, handle: Any) -> Iterator[tuple[Row, Problem | None]]:
        seen = KeySet()  # digests, not strings: flat memory however long the list
        first = next(handle, None)
        if first is None:
            return
        self.header_text = first
        self.newline = "\r\n" if first.endswith("\r\n") else "\n"
        self.header = _header(first.rstrip("\r\n"), self.path)
        lines = _Lines(handle)
        reader = csv.reader(lines, strict=True)
        while True:
            start = lines.number + 2
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if "unexpected end of data" in str(exc):
                    self.unclosed = start
                taken = lines.take_lines()
                key = self._line_key(taken[0]) if taken else None
                yield Row("".join(taken), None, key), Problem(start, f"not a CSV record: {exc}")
                yield from self._swallowed(taken[1:], start)
                continue
            taken = lines.take_lines()
            yield self._row("".join(taken), fields, start, lines.number + 1, seen)
            yield from self._swallowed(taken[1:], start)

    def _swallowed(self, rest: list[str], start: int) -> Iterator[tuple[Row, Problem | None]]:
        """The lines inside a record that look like records of their own: a quote left open swallowed them."""
        for offset, raw in enumerate(rest, 1):
            key = self._line_key(raw)
            if key is not None:
                yield (
                    Row("", None, key),
                    Problem(
                        start + offset,
                        f"{key} is inside the record that starts on line {start} (a quote left open there?); "
                        "this line is not read until that is fixed",
                    ),
                )

    def _line_key(self, raw: str) -> str | None:
        """The address at the start of one physical line, read on its own, if it is one."""
        try:
            fields = next(csv.reader([raw.rstrip("\r\n")]), [])
        except csv.Error:
            return None
        email = dict(zip(self.header, fields, strict=False)).get("email", "").strip()
        if "@" not in email:
            return None
        try:
            return check_email(email).lower()
        except SubscriberError:
            return None

    def _row(
        self, text: str, fields: list[str], number: int, last: int, seen: KeySet
    ) -> tuple[Row, Problem | None]:
        stripped = [field.strip() for field in fields]
        if not any(stripped):
            return Row(text, None), None
        values = dict(zip(self.header, stripped, strict=False))
        email: str | SubscriberError
        try:
            email = check_email(values.get("email", ""))  # once per line: the slow part of reading
        except SubscriberError as exc:
            email = exc
        key = email.lower() if isinstance(email, str) else None
        if self.keep is not None and not self.keep(key or values.get("email", "").lower()):
            return Row(text, None), None
        try:
            if last > number:
                raise SubscriberError(f"the record runs over lines {number}-{last} (a quote left open?)")
            if len(fields) > len(self.header):
                raise SubscriberError(f"{len(fields)} columns, but the header has {len(self.header)}")
            if isinstance(email, SubscriberError):
                raise email
            subscriber = parse_record(email, values, number, self.known)
        except SubscriberError as exc:
            return Row(text, None, key), Problem(number, exc.message)
        listed = subscriber.key
        if not seen.add_new(listed):
            return Row(text, None), Problem(
                number, f"{subscriber.email} is listed twice; this line is skipped"
            )
        return Row(text, subscriber, listed), None


def _header(text: str, path: Path) -> tuple[str, ...]:
    columns = tuple(c.strip().lower() for c in next(csv.reader([text])))
    if "email" not in columns:
        raise SubscriberError(f"the first line must be the header {','.join(HEADER)}", path=path, line=1)
    return columns


def list_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the list: changes whenever it is rewritten."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
