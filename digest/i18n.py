"""The words digest writes, in the newsletter's language: gettext catalogs chosen by ``[site] language``.

The catalogs are the ``.po`` files in ``digest/locale/<catalog>/LC_MESSAGES/``,
kept in git and shipped in the wheel as they are. Each is compiled to a ``.mo``
in memory with Babel the first time a process needs it (a few milliseconds),
so a fresh clone, an editable install and a wheel all work without a build
step, and a compiled file can never be older than its source.

A language tag is matched to a catalog leniently: case and ``_``/``-`` do not
matter, ``zh``/``zh-Hans``/``zh-SG`` read the ``zh-CN`` catalog and ``en-GB``
the ``en`` one. A real language no catalog serves (``ko``, ``ja``, ``es``, and
``zh-TW``, which must not read simplified Chinese) still runs: its tag is on every
page and feed, its dates are its own (Babel knows them), and digest's own words
come from the English catalog, with one warning (:func:`missing_catalog`). Only a
tag that names no language is a config error.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.support import Translations

__all__ = [
    "DOMAIN",
    "LOCALE_DIR",
    "N_",
    "Phrase",
    "Sentence",
    "available_catalogs",
    "date_pattern",
    "format_date",
    "gettext_for",
    "join_list",
    "join_title",
    "missing_catalog",
    "ngettext_for",
    "po_path",
    "resolve_language",
    "translations",
]

DOMAIN = "messages"
FALLBACK_CATALOG = "en"  # digest's own words for a language with no catalog
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
# Tags that name a catalog's language in another spelling: (language, script or region) -> catalog.
_ALIASES = {("zh", ""): "zh-CN", ("zh", "hans"): "zh-CN", ("zh", "sg"): "zh-CN", ("zh", "my"): "zh-CN"}
# Chinese in traditional script must not fall back to the simplified catalog.
_NO_FALLBACK = {("zh", "hant"), ("zh", "tw"), ("zh", "hk"), ("zh", "mo")}


def po_path(catalog: str) -> Path:
    """The ``.po`` file of a catalog (``zh-CN`` -> ``locale/zh_CN/LC_MESSAGES/messages.po``)."""
    return LOCALE_DIR / catalog.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def available_catalogs() -> tuple[str, ...]:
    """The shipped catalogs as language tags, e.g. ``('en', 'zh-CN')``."""
    found = LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po") if LOCALE_DIR.is_dir() else []
    return tuple(sorted(p.parents[1].name.replace("_", "-") for p in found))


@functools.cache
def resolve_language(language: str) -> str:
    """The catalog for a language tag: its own, else English; :class:`LookupError` if it names no language."""
    own = _own_catalog(language)
    if own is not None:
        return own
    if not _is_language(language):
        raise LookupError(
            f"{language!r} is not a language tag such as 'en', 'zh-CN', 'ko' or 'pt-BR' "
            f"(message catalogs: {', '.join(available_catalogs())})"
        )
    return FALLBACK_CATALOG


def missing_catalog(language: str) -> str | None:
    """The one warning for a language digest has no catalog for; None when it has one."""
    if _own_catalog(language) is not None:
        return None
    return (
        f"no message catalog for language {language!r} (available: {', '.join(available_catalogs())}): "
        f'pages and feeds say lang="{language}", digest\'s own words are English '
        "(docs/how-to/translate.md says how to add a catalog)"
    )


def _own_catalog(language: str) -> str | None:
    catalogs = {c.lower(): c for c in available_catalogs()}
    subtags = language.strip().replace("_", "-").lower().split("-")
    if "-".join(subtags) in catalogs:
        return catalogs["-".join(subtags)]
    primary, second = subtags[0], (subtags[1] if len(subtags) > 1 else "")
    alias = _ALIASES.get((primary, second), "")
    if alias.lower() in catalogs:
        return catalogs[alias.lower()]
    if (primary, second) not in _NO_FALLBACK:
        same = [c for key, c in catalogs.items() if key.split("-")[0] == primary]
        if len(same) == 1:
            return same[0]
    return None


@functools.cache
def _is_language(tag: str) -> bool:
    """Whether ``tag`` names a language Babel (CLDR) knows: ``ko``, ``pt-BR``, ``zh-Hant-TW``."""
    from babel import Locale, UnknownLocaleError

    if not tag.strip() or not all(part.isalnum() for part in tag.strip().replace("_", "-").split("-")):
        return False
    try:
        Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return False
    return True


@functools.cache
def translations(catalog: str) -> Translations:
    """The compiled catalog (``catalog`` as from :func:`resolve_language`)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with po_path(catalog).open("rb") as po:
        messages = read_po(po, domain=DOMAIN)  # the plural rule comes from its header: no CLDR lookup
    compiled = io.BytesIO()
    write_mo(compiled, messages, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


@dataclass(frozen=True, slots=True)
class Phrase:
    """A message of the catalogs with its placeholders' values, said in a language only when shown.

    A value may itself be a :class:`Phrase` (``the title``, ``the file name``): it is
    said in the same language, so a message built from parts reads as one sentence.
    ``str()`` is the English.
    """

    text: str
    params: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, text: str, /, **params: object) -> Phrase:
        return cls(text, tuple(params.items()))

    def says(self, language: str = "en") -> str:
        """The phrase in ``language`` (English where the catalog has no such message)."""
        if not self.params:
            return gettext_for(language)(self.text)
        values = {k: _said(v, language) for k, v in self.params}
        return gettext_for(language)(self.text, **values)

    @property
    def english(self) -> str:
        """The phrase as written in the sources (msgids are English), with no catalog to load."""
        if not self.params:
            return self.text
        return self.text % {k: v.english if isinstance(v, Phrase) else v for k, v in self.params}

    def __str__(self) -> str:
        return self.english


class Sentence(str):
    """English text that is also a :class:`Phrase`: kept as text, said in any language when shown.

    For words that travel as plain strings (an error's message, why a file is no issue).
    """

    phrase: Phrase

    def __new__(cls, text: str, /, **params: object) -> Sentence:
        phrase = Phrase.of(text, **params)
        sentence = super().__new__(cls, phrase.english)
        sentence.phrase = phrase
        return sentence


def _said(value: object, language: str) -> object:
    if isinstance(value, Sentence):
        return value.phrase.says(language)
    return value.says(language) if isinstance(value, Phrase) else value


def gettext_for(language: str) -> Callable[..., str]:
    """``_`` for Python code: ``_("Saved.")`` or ``_("%(email)s is subscribed", email=...)``."""
    catalog = translations(resolve_language(language))

    def _(message: str, **params: object) -> str:
        text = catalog.gettext(message)
        return text % params if params else text

    return _


def ngettext_for(language: str) -> Callable[..., str]:
    """``ngettext`` for Python code: ``ngettext("%(count)s item", "%(count)s items", n, count=n)``."""
    catalog = translations(resolve_language(language))

    def ngettext(singular: str, plural: str, number: int, **params: object) -> str:
        text = catalog.ngettext(singular, plural, number)
        return text % params if params else text

    return ngettext


def format_date(date: dt.date, language: str, form: str = "long") -> str:
    """A date as the language writes it: ``2026年11月1日``, ``November 1, 2026``, ``1 November 2026``."""
    from babel.dates import format_date as babel_format_date

    return babel_format_date(date, format=form, locale=_date_locale(language))


@functools.cache
def _date_locale(language: str) -> str:
    """Babel's locale for the tag itself if it knows it (en-GB has its own dates), else the catalog's."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(language.strip().replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        return resolve_language(language).replace("-", "_")


def date_pattern(language: str) -> list[tuple[str, str]]:
    """How :func:`format_date` lays a date out, as parts: ("year"|"day"|"month"|"month_name"|"text", text).

    For pages that assemble a date themselves from its numbers (the feed page's
    XSLT): ``2026年11月1日`` is year, text ``年``, month, ``月``, day, ``日``;
    ``month_name`` parts carry the month names, ``|``-separated, January first.
    """
    import re

    from babel.dates import get_month_names

    sample = format_date(dt.date(1999, 12, 28), language)
    names = get_month_names("wide", locale=_date_locale(language))
    tokens = {"1999": ("year", ""), "28": ("day", ""), names[12]: ("month_name", ""), "12": ("month", "")}
    month_names = "|".join(names[m] for m in range(1, 13))
    parts: list[tuple[str, str]] = []
    for piece in re.split("(" + "|".join(map(re.escape, tokens)) + ")", sample):
        if piece in tokens:
            kind = tokens[piece][0]
            parts.append((kind, month_names if kind == "month_name" else ""))
        elif piece:
            parts.append(("text", piece))
    return parts


def join_title(title: str, headline: str, language: str) -> str:
    """An issue's title and headline as one line, with the language's separator."""
    if not headline:
        return title
    _ = gettext_for(language)
    return _("%(title)s: %(headline)s", title=title, headline=headline)


def join_list(parts: list[str], language: str) -> str:
    """Parts of a list in one line, with the language's separator (``a, b``; ``甲，乙``)."""
    return gettext_for(language)(", ").join(parts)
