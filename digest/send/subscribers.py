"""The subscriber list: a CSV file people edit by hand, changed safely by digest.

Header: ``email,name,sections,status,since``. ``status`` is active, unsubscribed
or bounced (empty means active); ``sections`` is ``;``-separated feed slugs
(empty means all). Reading reports every bad line with its number and skips only
that line. Every change goes through one streaming rewrite (:func:`_rewrite`):
under a lock, line by line into a temporary file that is fsynced and renamed over
the list, keeping every line it did not change byte for byte, including the ones
it could not parse, in their place. Memory does not grow with the list.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.fsutil import atomic_write, file_lock

__all__ = [
    "HEADER",
    "STATUSES",
    "ImportReport",
    "Problem",
    "Subscriber",
    "SubscriberList",
    "add_subscriber",
    "address_key",
    "check_email",
    "export_csv",
    "find_subscriber",
    "import_subscribers",
    "iter_subscribers",
    "list_signature",
    "parse_sections",
    "read_subscribers",
    "remove_subscriber",
    "scan_subscribers",
    "set_sections",
    "set_status",
    "set_statuses",
]

HEADER = ("email", "name", "sections", "status", "since")
STATUSES = ("active", "unsubscribed", "bounced")
MAX_NAME = 100
LOCK_WAIT = 30.0
REWRITE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str
    sections: frozenset[str]
    status: str
    since: str
    line: int = 0

    @property
    def key(self) -> str:
        return self.email.lower()

    @property
    def active(self) -> bool:
        return self.status == "active"

    def wants(self) -> frozenset[str] | None:
        """The sections to mail, or None for all."""
        return self.sections or None


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str

    def format(self, path: Path) -> str:
        return f"{path}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Row:
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
    rows: tuple[_Row, ...]
    problems: tuple[Problem, ...]

    @property
    def subscribers(self) -> list[Subscriber]:
        return [row.subscriber for row in self.rows if row.subscriber is not None]

    def find(self, email: str) -> Subscriber | None:
        key = address_key(email)
        return next((s for s in self.subscribers if s.key == key), None)


# The plain addresses email-validator accepts, recognised without calling it: a
# dot-atom local part and a domain of letter-digit-hyphen labels whose top level
# starts and ends with a letter. Anything else (and special-use domains) gets the full check.
_PLAIN_ADDRESS = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?)$"
)


def _plain_address(address: str) -> str | None:
    """The normalised form of a plain address, or None when it needs email-validator's full check."""
    match = _PLAIN_ADDRESS.match(address)
    if not match or len(address) > 254 or len(match["local"]) > 64 or len(match["domain"]) > 253:
        return None
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    domain = match["domain"].lower()
    if "--" in domain:  # IDNA rules apply to such labels: leave them to the full check
        return None
    if any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES):
        return None
    return f"{match['local']}@{domain}"


def check_email(address: str) -> str:
    """The address as it should be stored, or :class:`SubscriberError` saying what is wrong.

    The decision is email-validator's syntax check (no DNS); the common plain
    addresses take a fast path that accepts exactly what it would accept.
    """
    address = address.strip()
    if any(ch in address for ch in "\r\n\x00,;<>"):
        raise SubscriberError(f"invalid address {address!r}: it contains a separator or line break")
    plain = _plain_address(address)
    if plain is not None:
        return plain
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid address {address!r}: {exc}") from None
    return valid.ascii_email or valid.normalized


def address_key(email: str) -> str:
    """How the list knows an address: normalised and in lower case (as typed, lower-cased, when invalid)."""
    try:
        return check_email(email).lower()
    except SubscriberError:
        return email.strip().lower()


def _check_name(name: str) -> str:
    name = name.strip()
    if any(ord(ch) < 32 for ch in name):
        raise SubscriberError("the name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"the name is longer than {MAX_NAME} characters")
    return name


def read_subscribers(path: Path, known_sections: Collection[str]) -> SubscriberList:
    """Read the whole list; a missing file is an empty list."""
    scan = _Scan(path, known_sections)
    rows, problems = [], []
    for row, problem in scan:
        rows.append(row)
        if problem:
            problems.append(problem)
    return SubscriberList(path, scan.header, tuple(rows), tuple(problems))


def iter_subscribers(
    path: Path, known_sections: Collection[str], keep: Callable[[str], bool] | None = None
) -> Iterator[Subscriber]:
    """Stream the valid subscribers without holding the whole list (for large sends).

    ``keep`` sees each line's address in lower case (normalised when it is valid,
    so two spellings of one address look alike) and can skip the rest of the
    line's checks: a send split over processes takes only its share.
    """
    for row, _ in _Scan(path, known_sections, keep):
        if row.subscriber is not None:
            yield row.subscriber


def find_subscriber(path: Path, known_sections: Collection[str], email: str) -> Subscriber | None:
    """One subscriber by address, checking only that line in full; None when not listed."""
    return next(iter_subscribers(path, known_sections, keep=address_key(email).__eq__), None)


def scan_subscribers(
    path: Path, known_sections: Collection[str]
) -> Iterator[tuple[Subscriber | None, Problem | None]]:
    """Stream every line as (subscriber, problem): one of them set, or neither for a blank line."""
    for row, problem in _Scan(path, known_sections):
        yield row.subscriber, problem


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

    def take(self) -> str:
        text, self.taken = "".join(self.taken), []
        return text


class _Scan:
    """Iterates (row, problem) over the records after the header, as csv reads them (a quoted
    field may span lines); ``header`` is known once iteration has started."""

    def __init__(self, path: Path, known: Collection[str], keep: Callable[[str], bool] | None = None):
        self.path = path
        self.known = known
        self.keep = keep
        self.header: tuple[str, ...] = HEADER
        self.header_text = ""
        self.newline = "\n"

    def __iter__(self) -> Iterator[tuple[_Row, Problem | None]]:
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SubscriberError(
                f"cannot read the subscriber list: {exc.strerror or exc}", path=self.path
            ) from None
        seen: set[str] = set()
        with handle:
            try:
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
                        yield _Row(lines.take(), None), Problem(start, f"not a CSV record: {exc}")
                        continue
                    yield self._row(lines.take(), fields, start, lines.number + 1, seen)
            except UnicodeDecodeError:
                raise SubscriberError(
                    "the subscriber list is not UTF-8; save it as UTF-8", path=self.path
                ) from None

    def _row(
        self, text: str, fields: list[str], number: int, last: int, seen: set[str]
    ) -> tuple[_Row, Problem | None]:
        if not any(field.strip() for field in fields):
            return _Row(text, None), None
        values = dict(zip(self.header, (f.strip() for f in fields), strict=False))
        email: str | SubscriberError
        try:
            email = check_email(values.get("email", ""))  # once per line: the slow part of reading
        except SubscriberError as exc:
            email = exc
        key = email.lower() if isinstance(email, str) else None
        if self.keep is not None and not self.keep(key or values.get("email", "").lower()):
            return _Row(text, None), None
        try:
            if last > number:
                raise SubscriberError(f"the record runs over lines {number}-{last} (a quote left open?)")
            if len(fields) > len(self.header):
                raise SubscriberError(f"{len(fields)} columns, but the header has {len(self.header)}")
            if isinstance(email, SubscriberError):
                raise email
            subscriber = _parse(email, values, number, self.known)
        except SubscriberError as exc:
            return _Row(text, None, key), Problem(number, exc.message)
        if subscriber.key in seen:
            return _Row(text, None), Problem(
                number, f"{subscriber.email} is listed twice; this line is skipped"
            )
        seen.add(subscriber.key)
        return _Row(text, subscriber, subscriber.key), None


def _header(text: str, path: Path) -> tuple[str, ...]:
    columns = tuple(c.strip().lower() for c in next(csv.reader([text])))
    if "email" not in columns:
        raise SubscriberError(f"the first line must be the header {','.join(HEADER)}", path=path, line=1)
    return columns


def _parse(email: str, values: dict[str, str], number: int, known: Collection[str]) -> Subscriber:
    """The subscriber on one line, its address already checked; the other fields are checked here."""
    sections = _known_sections(values.get("sections", "").split(";"), known)
    status = values.get("status", "").lower() or "active"
    if status not in STATUSES:
        raise SubscriberError(f"status '{status}' must be one of {', '.join(STATUSES)}")
    since = values.get("since", "")
    if since:
        try:
            dt.date.fromisoformat(since[:10])
        except ValueError:
            raise SubscriberError(f"since '{since}' is not a date (YYYY-MM-DD)") from None
    return Subscriber(email, _check_name(values.get("name", "")), sections, status, since, number)


KEEP = object()  # what an edit returns for a line it leaves alone


def _rewrite(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None = None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None = None,
) -> bool:
    """Stream the list through ``edit`` under its lock and replace it atomically; True if it changed.

    ``edit`` gets each subscriber and returns ``KEEP``, a changed ``Subscriber``,
    or None to erase the record; ``append`` gets every address on the list (with
    the line it is on, negative when that line cannot be read) and returns the
    subscribers to add at the end. Records that do not parse, blank lines and
    records left alone are written back exactly as they were, line endings
    included. If someone edits the file meanwhile (an editor does not take the
    lock), the rewrite starts again from their version.
    """
    with file_lock(path.with_name(f".{path.name}.lock"), what="the subscriber list", wait=LOCK_WAIT):
        for _ in range(REWRITE_ATTEMPTS):
            before = list_signature(path)
            data = _rewritten(path, known, edit, append)
            if data is None:
                return False
            if list_signature(path) != before:
                continue  # changed under us by a hand edit: do it again on the new text
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
            atomic_write(path, data, mode=mode)
            return True
    raise SubscriberError("the list keeps changing while digest rewrites it; try again", path=path)


def _rewritten(
    path: Path,
    known: Collection[str],
    edit: Callable[[Subscriber], object] | None,
    append: Callable[[dict[str, int]], list[Subscriber]] | None,
) -> bytes | None:
    scan = _Scan(path, known)
    body: list[str] = []  # only the text of records; a 100,000-line list is a few MB
    keys: dict[str, int] = {}
    changed = formatted = False  # a record written by digest uses the full header
    for row, problem in scan:
        if row.key is not None and row.key not in keys:
            keys[row.key] = (
                -problem.line if problem is not None else (row.subscriber.line if row.subscriber else 0)
            )
        subscriber = row.subscriber
        result = KEEP if subscriber is None or edit is None else edit(subscriber)
        if result is KEEP:
            body.append(row.text)
        elif result is None:
            changed = True
        else:
            assert isinstance(result, Subscriber)
            body.append(_format_row(_full(scan.header), result, row.text, scan.header) + scan.newline)
            changed = formatted = True
    for subscriber in append(keys) if append is not None else []:
        if body and not body[-1].endswith("\n"):
            body[-1] += scan.newline
        body.append(_format_row(_full(scan.header), subscriber, "", scan.header) + scan.newline)
        changed = formatted = True
    if not changed:
        return None
    header = scan.header_text or ",".join(HEADER) + scan.newline
    if formatted and _full(scan.header) != scan.header:
        original = next(csv.reader([header.rstrip("\r\n")]))
        added = [column for column in HEADER if column not in scan.header]
        header = _csv_line([*original, *added]) + scan.newline
    return (header + "".join(body)).encode("utf-8")


def _full(header: tuple[str, ...]) -> tuple[str, ...]:
    """The header with the standard columns it lacks added at the end (a hand-made list may lack some)."""
    return header + tuple(column for column in HEADER if column not in header)


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def _format_row(
    header: tuple[str, ...], subscriber: Subscriber, original: str, original_header: tuple[str, ...]
) -> str:
    """One CSV record for ``subscriber``, keeping the values of columns digest does not know."""
    old = next(csv.reader([original.rstrip("\r\n")])) if original.strip() else []
    values = dict(zip(original_header, old, strict=False))
    values.update(
        email=subscriber.email,
        name=subscriber.name,
        sections=";".join(sorted(subscriber.sections)),
        status=subscriber.status,
        since=subscriber.since,
    )
    return _csv_line([values.get(column, "") for column in header])


def list_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the list: changes whenever it is rewritten."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# -- the operations behind ``digest subscribers`` and the web endpoints ------------------------


def parse_sections(text: str, known: Collection[str]) -> frozenset[str]:
    """Sections a person typed (``;`` or ``,`` between slugs), each one a known slug."""
    return _known_sections(text.replace(",", ";").split(";"), known)


def _known_sections(slugs: Iterable[str], known: Collection[str]) -> frozenset[str]:
    sections = frozenset(s.strip() for s in slugs if s.strip())
    unknown = sorted(sections - set(known))
    if unknown:
        raise SubscriberError(f"unknown section '{unknown[0]}' (known: {', '.join(sorted(known))})")
    return sections


def add_subscriber(
    path: Path,
    known: Collection[str],
    email: str,
    *,
    name: str = "",
    sections: frozenset[str] = frozenset(),
    today: dt.date,
) -> Subscriber:
    """Add an address, or re-activate one that left (keeping its name and sections unless new ones are given).

    An address already active is an error, and so is one whose line cannot be read:
    that line must be fixed first, not shadowed by a second one.
    """
    address = check_email(email)
    new = Subscriber(address, _check_name(name), frozenset(sections), "active", today.isoformat())
    result = [new]

    def edit(subscriber: Subscriber) -> object:
        if subscriber.key != new.key:
            return KEEP
        if subscriber.active:
            raise SubscriberError(f"{address} is already subscribed", path=path, line=subscriber.line)
        name, chosen = new.name or subscriber.name, new.sections or subscriber.sections
        result[0] = replace(subscriber, status="active", since=new.since, name=name, sections=chosen)
        return result[0]

    def append(keys: dict[str, int]) -> list[Subscriber]:
        line = keys.get(new.key)
        if line is not None and line < 0:
            raise SubscriberError(
                f"{address} is on a line that cannot be read; fix it first", path=path, line=-line
            )
        return [] if line is not None else [new]

    _rewrite(path, known, edit, append)
    return result[0]


def set_statuses(path: Path, known: Collection[str], statuses: Mapping[str, str]) -> list[Subscriber]:
    """Give each listed address (lower case) its new status; returns the subscribers changed."""
    changed: list[Subscriber] = []

    def edit(subscriber: Subscriber) -> object:
        status = statuses.get(subscriber.key)
        if status is None or status == subscriber.status:
            return KEEP
        changed.append(replace(subscriber, status=status))
        return changed[-1]

    _rewrite(path, known, edit)
    return changed


def set_status(path: Path, known: Collection[str], email: str, status: str) -> Subscriber | None:
    """Change one address's status; None when it is not on the list (nothing changes)."""
    key = address_key(email)
    found: list[Subscriber] = []

    def edit(subscriber: Subscriber) -> object:
        if subscriber.key != key:
            return KEEP
        found.append(replace(subscriber, status=status))
        return found[-1] if subscriber.status != status else KEEP

    _rewrite(path, known, edit)
    return found[0] if found else None


def set_sections(
    path: Path, known: Collection[str], email: str, sections: frozenset[str]
) -> Subscriber | None:
    """Choose the sections one address gets; None when it is not on the list (nothing changes)."""
    key = address_key(email)
    found: list[Subscriber] = []

    def edit(subscriber: Subscriber) -> object:
        if subscriber.key != key:
            return KEEP
        found.append(replace(subscriber, sections=frozenset(sections)))
        return found[-1]

    _rewrite(path, known, edit)
    return found[0] if found else None


def remove_subscriber(path: Path, known: Collection[str], email: str, *, purge: bool = False) -> Subscriber:
    """Unsubscribe an address (kept as ``unsubscribed``), or with ``purge`` erase its line."""
    key = address_key(email)
    found: list[Subscriber] = []

    def edit(subscriber: Subscriber) -> object:
        if subscriber.key != key:
            return KEEP
        found.append(subscriber)
        return None if purge else replace(subscriber, status="unsubscribed")

    _rewrite(path, known, edit)
    if not found:
        raise SubscriberError(f"{email} is not on the list", path=path)
    return found[0]


@dataclass(frozen=True)
class ImportReport:
    added: tuple[str, ...]
    present: tuple[str, ...]
    problems: tuple[Problem, ...]


def import_subscribers(path: Path, known: Collection[str], source: Path, *, today: dt.date) -> ImportReport:
    """Add every valid address of another CSV (with an ``email`` column); existing ones stay as they are."""
    if not source.is_file():
        raise SubscriberError("no such file to import", path=source)
    incoming = read_subscribers(source, known)
    added: list[str] = []
    present: list[str] = []

    def append(keys: dict[str, int]) -> list[Subscriber]:
        new = []
        for subscriber in incoming.subscribers:
            if subscriber.key in keys:  # on the list, even on a line that needs fixing
                present.append(subscriber.email)
                continue
            keys[subscriber.key] = 0
            new.append(replace(subscriber, since=subscriber.since or today.isoformat()))
            added.append(subscriber.email)
        return new

    _rewrite(path, known, None, append)
    return ImportReport(tuple(added), tuple(present), incoming.problems)


def export_csv(subscribers: Collection[Subscriber], statuses: Collection[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for s in subscribers:
        if statuses is None or s.status in statuses:
            writer.writerow([s.email, s.name, ";".join(sorted(s.sections)), s.status, s.since])
    return buffer.getvalue()
