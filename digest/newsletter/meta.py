"""An issue's metadata, wherever the newsletter keeps it.

Jekyll's YAML front matter (``---``), Hugo's TOML front matter (``+++``), or
Pelican/MultiMarkdown ``Key: value`` lines at the top of the file. Keys come back
as written for front matter and lowercased for metadata lines, so ``Title:`` and
``title:`` read the same. The issue number is found here too, from the metadata,
the title (``第 300 期``, ``#665``, ``Issue 12``) or the file name (``issue-300.md``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from digest.i18n import N_
from digest.newsletter.model import Severity

__all__ = ["DATE_KEYS", "METADATA_KEYS", "date_key_rank", "issue_number", "metadata_date", "read_metadata"]

WARNING = Severity.WARNING

# A block of ``Key: value`` lines is metadata only when it names one of these.
METADATA_KEYS = frozenset(
    {"title", "date", "number", "issue", "status", "slug", "category", "tags", "author", "authors",
     "summary", "modified", "lang", "draft", "published", "send_at", "pubdate", "description"}
)  # fmt: skip
# The names newsletters give an issue's date, most specific first (compared without case, ``-``, ``_``).
DATE_KEYS = (
    "date", "pubdate", "publishdate", "published", "publishedat", "publishedon", "publicationdate",
    "released", "created", "createdat",
)  # fmt: skip
_KEY_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9 _-]{0,30}?)\s*:\s*(.*?)\s*$")
_NUMBER_IN_TITLE = (
    re.compile(r"第\s*(\d{1,5})\s*期"),
    re.compile(r"(?<![A-Za-z0-9_&#])#(\d{1,5})(?!\d)"),  # also right after Han text: 周报#109
    re.compile(r"\b(?:issue|no\.|number|vol\.)\s*#?\s*(\d{1,5})\b", re.I),
)
_NUMBER_IN_NAME = re.compile(r"(?:^|[-_])(?:issue|no|vol|weekly)?[-_]?(\d{1,5})$", re.I)


class _Log(Protocol):  # the part of scan.FindingLog used here (scan imports this module)
    def note(self, line: int, code: str, severity: Severity, message: str, /, **params: object) -> None: ...


def read_metadata(lines: list[str], log: _Log) -> tuple[dict[str, Any], int]:
    """The metadata and the index of the first body line; bad metadata is a warning, then ignored.

    Blank lines before the opening fence are allowed, as Jekyll and Hugo allow them.
    """
    start = next((index for index, line in enumerate(lines) if line.strip()), len(lines))
    first = lines[start].strip() if start < len(lines) else ""
    if first == "---":
        return _fenced(lines, start, ("---", "..."), _yaml, log)
    if first == "+++":
        return _fenced(lines, start, ("+++",), _toml, log)
    found, end = _key_lines(lines[start:])
    return (found, start + end) if found else ({}, 0)


def _fenced(
    lines: list[str], start: int, closers: tuple[str, ...], load: Any, log: _Log
) -> tuple[dict[str, Any], int]:
    for end in range(start + 1, len(lines)):
        if lines[end].strip() in closers:
            break
    else:
        message = N_("front matter opened with '%(fence)s' is never closed")
        log.note(start + 1, "bad-front-matter", WARNING, message, fence=lines[start].strip())
        return {}, 0
    loaded = load(lines[start + 1 : end], start + 2, log)
    return loaded, end + 1


@cache
def _loader() -> type:
    """YAML's safe loader, but a timestamp that is no real day (``2022-02-29``) stays text.

    The date is then reported on its own, and the rest of the front matter (the
    title, the draft flag) is still read. Built on first use: yaml is imported only then.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
        try:
            return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
        except (ValueError, OverflowError):
            return loader.construct_scalar(node)

    Loader.add_constructor("tag:yaml.org,2002:timestamp", timestamp)
    return Loader


def _yaml(lines: list[str], first_line: int, log: _Log) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.load("\n".join(lines), Loader=_loader()) or {}  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + (mark.line if mark is not None else 0)
        message = N_("front matter is not valid YAML; ignored (%(error)s)")
        log.note(line, "bad-front-matter", WARNING, message, error=exc.__class__.__name__)
        return {}
    except (ValueError, TypeError, OverflowError) as exc:
        message = N_("front matter has an impossible value (%(error)s); ignored")
        log.note(first_line, "bad-front-matter", WARNING, message, error=str(exc))
        return {}
    return _mapping(loaded, first_line, log)


_TOML_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")
_TOML_PAIR = re.compile(r"^(\s*[A-Za-z0-9_.\"'-]+\s*=\s*)(.*?)\s*$")


def _toml(lines: list[str], first_line: int, log: _Log) -> dict[str, Any]:
    """TOML front matter; a value TOML refuses (``date = 2022-02-29``) is read as text, with a warning."""
    lines = list(lines)
    for _ in range(10):  # a few bad values at most; past that the block is not TOML
        try:
            return _mapping(tomllib.loads("\n".join(lines)), first_line, log)
        except tomllib.TOMLDecodeError as exc:
            where = _TOML_ERROR_LINE.search(str(exc))
            index = int(where.group(1)) - 1 if where else -1
            pair = _TOML_PAIR.match(lines[index]) if 0 <= index < len(lines) else None
            if pair is None or pair.group(2).startswith(("'", '"', "[", "{")):
                message = N_("front matter is not valid TOML; ignored (%(error)s)")
                log.note(first_line + max(index, 0), "bad-front-matter", WARNING, message, error=str(exc))
                return {}
            key = pair.group(1).split("=")[0].strip().strip("\"'")
            if date_key_rank(key) is None:
                message = N_("front matter '%(key)s' is not a TOML value; read as the text %(text)s")
                log.note(
                    first_line + index,
                    "bad-front-matter",
                    WARNING,
                    message,
                    key=key,
                    text=repr(pair.group(2)),
                )
            lines[index] = pair.group(1) + _toml_string(pair.group(2))
    log.note(first_line, "bad-front-matter", WARNING, N_("front matter is not valid TOML; ignored"))
    return {}


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mapping(loaded: object, line: int, log: _Log) -> dict[str, Any]:
    if not isinstance(loaded, Mapping):
        log.note(line, "bad-front-matter", WARNING, N_("front matter is not a mapping of keys; ignored"))
        return {}
    return {str(k): v for k, v in loaded.items()}


def date_key_rank(key: str) -> int | None:
    """Where a metadata key stands among the names newsletters give their date; None for other keys."""
    folded = re.sub(r"[\s_-]", "", key).casefold()
    return DATE_KEYS.index(folded) if folded in DATE_KEYS else None


def metadata_date(meta: Mapping[str, Any]) -> tuple[str, object] | None:
    """The key and value of the issue's date in its metadata (``date``, ``pubDate``, ``published``...).

    ``published: true`` or ``published: false`` is Jekyll's draft switch, not a date.
    """
    ranked = [
        (rank, key)
        for key, value in meta.items()
        if (rank := date_key_rank(key)) is not None
        and value not in (None, "")
        and not isinstance(value, bool)
    ]
    if not ranked:
        return None
    key = min(ranked)[1]
    return key, meta[key]


def _key_lines(lines: list[str]) -> tuple[dict[str, Any], int]:
    """Pelican/MultiMarkdown ``Key: value`` lines at the top, ended by a blank line."""
    found: dict[str, Any] = {}
    end = 0
    for end, line in enumerate(lines):  # noqa: B007 (end is used after the loop)
        if not line.strip():
            break
        match = _KEY_LINE.match(line)
        if match:
            found[match.group(1).lower()] = match.group(2)
        elif line[:1].isspace() and found:  # a continued value
            key = next(reversed(found))
            found[key] = f"{found[key]} {line.strip()}"
        else:
            return {}, 0
    else:
        end = len(lines)
    if not METADATA_KEYS & set(found):
        return {}, 0
    return found, end


def issue_number(meta: Mapping[str, Any], title: str, stem: str) -> int | None:
    """The issue number from the metadata, else the title, else the file name."""
    for key in ("number", "issue", "Number", "Issue"):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*#?\d{1,5}\s*", value):
            return int(value.strip().lstrip("#"))
    for pattern in _NUMBER_IN_TITLE:
        match = pattern.search(title)
        if match:
            return int(match.group(1))
    match = _NUMBER_IN_NAME.search(stem)
    if match and not re.match(r"^\d{4}-\d{2}", stem):
        return int(match.group(1))
    return None
