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
from typing import Any, Protocol

from digest.newsletter.model import Severity

__all__ = ["METADATA_KEYS", "issue_number", "read_metadata"]

WARNING = Severity.WARNING

# A block of ``Key: value`` lines is metadata only when it names one of these.
METADATA_KEYS = frozenset(
    {"title", "date", "number", "issue", "status", "slug", "category", "tags", "author", "authors",
     "summary", "modified", "lang", "draft", "published", "send_at"}
)  # fmt: skip
_KEY_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9 _-]{0,30}?)\s*:\s*(.*?)\s*$")
_NUMBER_IN_TITLE = (
    re.compile(r"第\s*(\d{1,5})\s*期"),
    re.compile(r"(?<![A-Za-z0-9_&#])#(\d{1,5})(?!\d)"),  # also right after Han text: 周报#109
    re.compile(r"\b(?:issue|no\.|number|vol\.)\s*#?\s*(\d{1,5})\b", re.I),
)
_NUMBER_IN_NAME = re.compile(r"(?:^|[-_])(?:issue|no|vol|weekly)?[-_]?(\d{1,5})$", re.I)


class _Log(Protocol):  # the part of scan.FindingLog used here (scan imports this module)
    def note(self, line: int, code: str, severity: Severity, message: str) -> None: ...


def read_metadata(lines: list[str], log: _Log) -> tuple[dict[str, Any], int]:
    """The metadata and the index of the first body line; bad metadata is a warning, then ignored."""
    first = lines[0].strip() if lines else ""
    if first == "---":
        return _fenced(lines, ("---", "..."), _yaml, log)
    if first == "+++":
        return _fenced(lines, ("+++",), _toml, log)
    return _key_lines(lines)


def _fenced(lines: list[str], closers: tuple[str, ...], load: Any, log: _Log) -> tuple[dict[str, Any], int]:
    for end in range(1, len(lines)):
        if lines[end].strip() in closers:
            break
    else:
        log.note(
            1, "bad-front-matter", WARNING, f"front matter opened with '{lines[0].strip()}' is never closed"
        )
        return {}, 0
    loaded = load("\n".join(lines[1:end]), log)
    return loaded, end + 1


def _yaml(text: str, log: _Log) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = 2 + (mark.line if mark is not None else 0)
        message = f"front matter is not valid YAML; ignored ({exc.__class__.__name__})"
        log.note(line, "bad-front-matter", WARNING, message)
        return {}
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. "date: 2026-02-30"
        log.note(2, "bad-front-matter", WARNING, f"front matter has an impossible value ({exc}); ignored")
        return {}
    return _mapping(loaded, log)


def _toml(text: str, log: _Log) -> dict[str, Any]:
    try:
        loaded = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        log.note(2, "bad-front-matter", WARNING, f"front matter is not valid TOML; ignored ({exc})")
        return {}
    return _mapping(loaded, log)


def _mapping(loaded: object, log: _Log) -> dict[str, Any]:
    if not isinstance(loaded, Mapping):
        log.note(2, "bad-front-matter", WARNING, "front matter is not a mapping of keys; ignored")
        return {}
    return {str(k): v for k, v in loaded.items()}


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
