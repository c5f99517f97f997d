"""One subscriber, and one record of the list's CSV: its columns, its checks, its formatting.

Header: ``email,name,sections,status,since``. ``status`` is active, unsubscribed
or bounced (empty means active); ``sections`` is ``;``-separated feed slugs
(empty means all). Pure functions: nothing here reads or writes a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SubscriberError

__all__ = [
    "HEADER",
    "MAX_NAME",
    "STATUSES",
    "Problem",
    "Subscriber",
    "address_key",
    "check_email",
    "check_name",
    "csv_line",
    "export_csv",
    "format_row",
    "full_header",
    "known_sections",
    "parse_record",
    "parse_sections",
]


HEADER = ("email", "name", "sections", "status", "since")
STATUSES = ("active", "unsubscribed", "bounced")
MAX_NAME = 100


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
    """A line that cannot be read: its number and why; ``path`` when it is not the list's own line."""

    line: int
    message: str
    path: Path | None = None  # the change journal's lines name their own file

    def format(self, path: Path) -> str:
        return f"{self.path or path}:{self.line}: {self.message}"


# The plain addresses email-validator accepts, recognised without calling it: a
# dot-atom local part and a domain of letter-digit-hyphen labels whose top level
# starts and ends with a letter. Anything else (and special-use domains) gets the full check.
_PLAIN_ADDRESS = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?)$"
)


# email-validator's SPECIAL_USE_DOMAIN_NAMES (a test keeps the two the same): importing it to read
# them would cost every send the library's start-up, though the fast path decides most addresses.
SPECIAL_USE_DOMAINS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})
_SEPARATOR = re.compile("[\r\n\x00,;<>]")  # what would split a line of the list or a header


def _plain_address(address: str) -> str | None:
    """The normalised form of a plain address, or None when it needs email-validator's full check."""
    match = _PLAIN_ADDRESS.match(address)
    if not match or len(address) > 254:
        return None
    local, domain = match.group("local", "domain")
    if len(local) > 64 or len(domain) > 253:
        return None
    domain = domain.lower()
    if "--" in domain or _special_use(domain):  # IDNA rules apply to "--" labels: the full check
        return None
    return f"{local}@{domain}"


def _special_use(domain: str) -> bool:
    """Whether the (lower-case) domain is, or is under, a special-use name email-validator refuses."""
    while domain not in SPECIAL_USE_DOMAINS:
        _, dot, domain = domain.partition(".")
        if not dot:
            return False
    return True


def check_email(address: str) -> str:
    """The address as it should be stored, or :class:`SubscriberError` saying what is wrong.

    The decision is email-validator's syntax check (no DNS); the common plain
    addresses take a fast path that accepts exactly what it would accept.
    """
    address = address.strip()
    if _SEPARATOR.search(address):
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


_CONTROL = re.compile("[\x00-\x1f]")


def check_name(name: str) -> str:
    name = name.strip()
    if _CONTROL.search(name):
        raise SubscriberError("the name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise SubscriberError(f"the name is longer than {MAX_NAME} characters")
    return name


def parse_record(email: str, values: dict[str, str], number: int, known: Collection[str]) -> Subscriber:
    """The subscriber on one line, its address already checked; the other fields are checked here."""
    listed = values.get("sections", "")
    sections = known_sections(listed.split(";"), known) if listed.strip() else frozenset()
    status = values.get("status", "").lower() or "active"
    if status not in STATUSES:
        raise SubscriberError(f"status '{status}' must be one of {', '.join(STATUSES)}")
    since = values.get("since", "")
    if since:
        try:
            dt.date.fromisoformat(since[:10])
        except ValueError:
            raise SubscriberError(f"since '{since}' is not a date (YYYY-MM-DD)") from None
    return Subscriber(email, check_name(values.get("name", "")), sections, status, since, number)


def full_header(header: tuple[str, ...]) -> tuple[str, ...]:
    """The header with the standard columns it lacks added at the end (a hand-made list may lack some)."""
    return header + tuple(column for column in HEADER if column not in header)


def csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def format_row(
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
    return csv_line([values.get(column, "") for column in header])


def parse_sections(text: str, known: Collection[str]) -> frozenset[str]:
    """Sections a person typed (``;`` or ``,`` between slugs), each one a known slug."""
    return known_sections(text.replace(",", ";").split(";"), known)


def known_sections(slugs: Iterable[str], known: Collection[str]) -> frozenset[str]:
    sections = frozenset(s.strip() for s in slugs if s.strip())
    unknown = sorted(sections - set(known))
    if unknown:
        listed = ", ".join(sorted(known)) or "none: name them in [feeds.sections]"
        raise SubscriberError(f"unknown section '{unknown[0]}' (known: {listed})")
    return sections


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: str) -> str:
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading ``'``."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def export_csv(subscribers: Collection[Subscriber], statuses: Collection[str] | None = None) -> str:
    """The subscribers as CSV for a spreadsheet: a cell that would run as a formula starts with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for s in subscribers:
        if statuses is None or s.status in statuses:
            cells = [s.email, s.name, ";".join(sorted(s.sections)), s.status, s.since]
            writer.writerow([_inert(cell) for cell in cells])
    return buffer.getvalue()
