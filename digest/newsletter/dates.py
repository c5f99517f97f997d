"""When an issue came out: its date, from the first of its sources that has one.

The sources, in order: the metadata (``date``, ``pubDate``, ``published``...),
the title line, the file's name (Jekyll's rule, ``YYYY-M-D-slug`` with or without
zero padding, and dates anywhere in the name such as ``#16-2018.04.21``), the
folder's name (``2024-03-05/index.md``, ``2024/03/05/``), the file's first
commit, and last a month in a name (``2024-03/index.md``: the 1st).

A source that names an impossible day (``2022-02-29``, ``2021-(TODO: MM-DD)``)
is a warning that says which date was used instead. Sources that disagree by a
week or more are a warning too; closer than that they are the ordinary case of a
file named for the week it covers and dated when it was sent. A year folder
(``2020/``) outranks a source whose year disagrees with it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from digest.i18n import N_, Phrase
from digest.newsletter.meta import metadata_date
from digest.newsletter.model import Severity

__all__ = ["Dated", "date_in_name", "find_date", "front_datetime", "issue_date", "issue_folder_name"]

WARNING, FATAL = Severity.WARNING, Severity.FATAL
CLOSE_ENOUGH = dt.timedelta(days=6)  # a file named for its week, dated when sent

_ENGLISH_MONTHS = (
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec"),
)  # fmt: skip
_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{4})\s*[-./年년]\s*(\d{1,2})\s*[-./月월]\s*(\d{1,2})(?!\d)")
_DAY = r"(\d{1,2})(?:st|nd|rd|th|er|º|\.)?"  # 1st, 1er (French), 1º, 1. (German)
_OF = r"(?:\s+(?:de|del|di|of))?"  # 1 de marzo de 2024, 1 of March 2024
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})([-._])(\d{1,2})\2(\d{1,2})(?!\d)")
_COMPACT_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")
_NAME_MONTH = re.compile(r"(?<!\d)((?:19|20)\d{2})[-._](\d{1,2})(?![-._]?\d)")
_YEAR = re.compile(r"(?:19|20)\d{2}")
BUNDLE_PAGES = ("index", "readme")  # the page of a folder that is one issue (Hugo's page bundle)


_IN_METADATA = N_("the metadata's '%(key)s'")
_NOT_A_MOMENT = N_("the metadata's '%(key)s' (%(value)s) is not a date and time")
_NOT_A_DATE = N_("the metadata's '%(key)s' (%(value)s) is not a real date")
_MISMATCH = N_("%(source)s says %(date)s, but %(other)s says %(other_date)s; using %(date)s")
_MISMATCH_BY_FOLDER = N_(
    "%(source)s says %(date)s, but %(other)s says %(other_date)s; using %(date)s "
    "(the year of the folder it is in)"
)


class _Log(Protocol):
    def note(self, line: int, code: str, severity: Severity, message: str, /, **params: object) -> None: ...


@dataclass(frozen=True)
class Dated:
    """The issue's day, and the moment it counts as published (a time when a source gives one)."""

    date: dt.date
    published: dt.datetime


@dataclass(frozen=True)
class _Source:
    where: Phrase
    date: dt.date
    moment: dt.datetime | None = None
    month_only: bool = False


def issue_folder_name(path: Path) -> str:
    """The issue's own name: its file's stem, or its folder's name for ``2024-03/index.md``."""
    if path.stem.lower() in BUNDLE_PAGES and path.parent.name:
        return path.parent.name
    return path.stem


def find_date(text: str, language: str = "en") -> tuple[dt.date | None, str]:
    """The first full date written in ``text`` and the text that spells it.

    Numbers in any script's order of year, month, day (``2024-03-01``, ``2024.3.1``,
    ``2024年3月1日``), or a day, a month's name and a year, in English or in the
    newsletter's ``language`` (``March 1, 2024``, ``1 de marzo de 2024``, ``1. März 2024``).
    A spelling that names no real day (``2022-02-30``) gives ``(None, spelling)``;
    no date at all gives ``(None, "")``. A month and year alone are not a date.
    """
    months, by_name = _month_patterns(language)
    found: list[tuple[int, str, int, int, int]] = []
    for pattern, (y, m, d) in ((_NUMERIC_DATE, (1, 2, 3)), *by_name):
        match = pattern.search(text)
        if match:
            month = match.group(m)
            number = int(month) if month.isdigit() else months[month.casefold().rstrip(".")]
            found.append((match.start(), match.group(0), int(match.group(y)), number, int(match.group(d))))
    if not found:
        return None, ""
    _, spelled, year, month, day = min(found)
    return _day(year, month, day), spelled


@cache
def _month_patterns(
    language: str,
) -> tuple[dict[str, int], tuple[tuple[re.Pattern[str], tuple[int, int, int]], ...]]:
    """Month names (English, and the language's own as Babel knows them) and the patterns that use them."""
    months = {name: number for number, names in enumerate(_ENGLISH_MONTHS, start=1) for name in names}
    for number, name in _babel_months(language):
        months.setdefault(name, number)
    names = "(" + "|".join(re.escape(n) for n in sorted(months, key=len, reverse=True)) + r")\.?"
    return months, (
        (re.compile(names + r"\s+" + _DAY + r",?" + _OF + r"\s+(\d{4})(?!\d)", re.I), (3, 1, 2)),
        (re.compile(_DAY + _OF + r"\s+" + names + r",?" + _OF + r"\s+(\d{4})(?!\d)", re.I), (3, 2, 1)),
    )


def _babel_months(language: str) -> list[tuple[int, str]]:
    """The language's month names, wide and abbreviated, as written alone and in a date."""
    from babel import Locale, UnknownLocaleError
    from babel.dates import get_month_names

    try:
        locale = Locale.parse(language.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return []
    found = []
    for width in ("wide", "abbreviated"):
        for context in ("format", "stand-alone"):
            for number, name in get_month_names(width, context, locale).items():
                folded = name.casefold().rstrip(".")
                if folded.isalpha():  # not 3月 or 3월: those are numbers, read by the numeric pattern
                    found.append((number, folded))
    return found


def date_in_name(name: str) -> dt.date | None:
    """A full date in a file or folder name: Jekyll's ``YYYY-M-D-slug``, ``2018.04.21``, ``20180421``."""
    for pattern, groups in ((_NAME_DATE, (1, 3, 4)), (_COMPACT_DATE, (1, 2, 3))):
        match = pattern.search(name)
        if match:
            found = _day(*(int(match.group(g)) for g in groups))
            if found is not None:
                return found
    return None


def front_datetime(value: object, tz: dt.tzinfo) -> dt.datetime | None:
    """A metadata date as a moment (the site's timezone unless it names one); None if it is no real day."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0, 0), tzinfo=tz)
    if not isinstance(value, str) or not re.search(r"\d{4}", value):
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = _dateutil(text)
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _dateutil(text: str) -> dt.datetime | None:
    """RFC 822 and other spellings; only when they name a year, a month and a day."""
    from dateutil import parser as dateparser

    try:
        first = dateparser.parse(text, default=dt.datetime(1904, 1, 1))
        second = dateparser.parse(text, default=dt.datetime(1908, 2, 2))
    except (ValueError, OverflowError, TypeError):
        return None
    return first if first.date() == second.date() else None


def _day(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def issue_date(
    *,
    meta: Mapping[str, Any],
    meta_lines: Mapping[str, int],
    title: str,
    title_line: int,
    path: Path,
    timezone: dt.tzinfo,
    first_commits: Mapping[str, dt.datetime],
    commit_key: str,
    log: _Log,
    language: str = "en",
) -> Dated | None:
    """The issue's date from its first source that has one; None (with a fatal finding) when none has."""
    bad: list[tuple[int, Phrase]] = []  # (line, what is wrong) for sources that name no real day
    sources = _content_sources(meta, meta_lines, (title, title_line, language), path, timezone, bad)
    full = [s for s in sources if not s.month_only]
    if not full:
        committed = first_commits.get(commit_key)
        if committed is not None:
            local = committed.astimezone(timezone)
            full = [_Source(Phrase.of(N_("the first commit")), local.date(), local)]
    ranked = _by_year_folder(full or [s for s in sources if s.month_only], path)
    if not ranked:
        for line, what in bad:
            log.note(line, "bad-date", WARNING, N_("%(problem)s; ignored"), problem=what)
        message = N_(
            "no date in the file, and it is not committed to git yet: add 'date: YYYY-MM-DD' to its "
            "front matter, put the date in its name (YYYY-MM-DD-name.md), or commit it"
        )
        log.note(title_line, "no-date", FATAL, message)
        return None
    chosen = ranked[0]
    for line, what in bad:
        where = Phrase.of(N_("its day")) if chosen.where.text == _IN_METADATA else chosen.where
        message = N_("%(problem)s; using %(date)s from %(source)s")
        log.note(line, "bad-date", WARNING, message, problem=what, date=chosen.date, source=where)
    by_folder = bool(full) and chosen is not full[0]
    for other in ranked[1:]:
        if not other.month_only and abs(other.date - chosen.date) > CLOSE_ENOUGH:
            message = _MISMATCH_BY_FOLDER if by_folder else _MISMATCH
            said = {
                "source": chosen.where,
                "date": chosen.date,
                "other": other.where,
                "other_date": other.date,
            }
            log.note(title_line or 1, "date-mismatch", WARNING, message, **said)
    moment = next((s.moment for s in sources if s.moment is not None and s.date == chosen.date), None)
    moment = moment or chosen.moment or dt.datetime.combine(chosen.date, dt.time(0, 0), tzinfo=timezone)
    return Dated(chosen.date, moment)


def _content_sources(
    meta: Mapping[str, Any],
    meta_lines: Mapping[str, int],
    heading: tuple[str, int, str],
    path: Path,
    tz: dt.tzinfo,
    bad: list[tuple[int, str]],
) -> list[_Source]:
    """The dates the file itself gives, in order of trust."""
    sources: list[_Source] = []
    found = metadata_date(meta)
    if found is not None:
        key, value = found
        moment = front_datetime(value, tz)
        day = _as_written(value, moment) if moment else _leading_day(value)
        if moment is None:
            what = _NOT_A_MOMENT if day else _NOT_A_DATE
            line = {k.casefold(): n for k, n in meta_lines.items()}.get(key.casefold(), 1)
            bad.append((line, Phrase.of(what, key=key, value=value)))
        if day is not None:
            sources.append(_Source(Phrase.of(_IN_METADATA, key=key), day, moment))
    title, title_line, language = heading
    day, spelled = find_date(title, language)
    if day is not None:
        sources.append(_Source(Phrase.of(N_("the title")), day))
    elif spelled:
        bad.append(
            (title_line, Phrase.of(N_("the title's date %(date)s is not a real date"), date=repr(spelled)))
        )
    name = issue_folder_name(path)
    for where, day in (
        (N_("the file name"), date_in_name(name)),
        (N_("the folder name"), date_in_name(path.parent.name) if name == path.stem else None),
        (N_("the folders"), _date_of_folders(path)),
    ):
        if day is not None:
            sources.append(_Source(Phrase.of(where), day))
            break
    month = _NAME_MONTH.search(name)
    if month and 1 <= int(month.group(2)) <= 12:
        first = dt.date(int(month.group(1)), int(month.group(2)), 1)
        sources.append(_Source(Phrase.of(N_("the month in the name")), first, month_only=True))
    return sources


def _as_written(value: object, moment: dt.datetime) -> dt.date:
    """The day a metadata value names as written (``2024-05-06 08:30 +0800`` is the 6th, anywhere)."""
    return value if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else moment.date()


def _leading_day(value: object) -> dt.date | None:
    """The day at the start of a metadata value whose time is unreadable (``2024-04-17 14:4g5``)."""
    if not isinstance(value, str):
        return None
    match = re.match(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})[T\s]", value)
    return _day(*(int(g) for g in match.groups())) if match else None


def _date_of_folders(path: Path) -> dt.date | None:
    """``2024/03/05/name.md``: a date spelled by the folders."""
    parts = path.parent.parts[-3:]
    if len(parts) == 3 and _YEAR.fullmatch(parts[0]) and parts[1].isdigit() and parts[2].isdigit():
        return _day(int(parts[0]), int(parts[1]), int(parts[2]))
    return None


def _by_year_folder(sources: list[_Source], path: Path) -> list[_Source]:
    """The sources in order of trust, unless the first is in another year than its year folder (``2020/``)
    and a source in that year disagrees with it: then that one is first (the other has a typo).

    An issue of the last days of December sent in January stays as its first source says.
    """
    folders = path.parent.parts[-2:] if path.stem.lower() in BUNDLE_PAGES else path.parent.parts[-1:]
    years = {int(p) for p in folders if _YEAR.fullmatch(p)}
    if len(years) != 1 or not sources or sources[0].date.year in years:
        return sources
    first = sources[0].date
    agreeing = [s for s in sources if s.date.year in years and abs(s.date - first) > CLOSE_ENOUGH]
    return [agreeing[0], *(s for s in sources if s is not agreeing[0])] if agreeing else sources
