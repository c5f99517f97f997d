"""An issue's outline, from its own headings, and what makes a line the start of an item.

The title is the front matter's ``title``, else a first ``#`` heading; the section level
is the shallowest level the issue uses for its parts: the level of its first part when
no part is shallower, else the shallowest used at least twice (a stray heading is not
an outline), not counting headings that are links. Deeper
headings are subsections, or items when they are a link followed by text. A list item
or a numbered paragraph is an item when a link leads it, after an optional short label
(``**Label:**``, ``[tag]``, an emoji); anything else is prose.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EMPHASIS_LEAD",
    "URL_LEAD",
    "Outline",
    "clean_heading",
    "led_by_link",
    "match_bracket",
    "outline",
    "short_label_end",
]

_LEADING_SYMBOLS = re.compile(r"^[^\w\[\]()（）<>`*_~]*", re.UNICODE)
_LABEL_WORDS = re.compile(r"^(?:\*\*|__|\*|_)?[^\[\]()\n]{1,40}?[：:](?:\*\*|__|\*|_)?[：:]?\s+")
_BRACKET_LABEL = re.compile(r"^[【〔]([^【】〔〕]{1,30})[】〕]\s*")
EMPHASIS_LEAD = re.compile(r"(\*\*|__|\*|_)(?=\[)")  # '**[title](url)**': a link in bold
URL_LEAD = re.compile(r"<?(https?://[^\s<>]+)>?")  # '<https://x.org>' or a bare URL
_INNER_LINK = re.compile(r"\[[^\[\]]*\]\(")
_INLINE_MARKUP = re.compile(r"(\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`|~~)")


@dataclass(frozen=True, slots=True)
class Outline:
    """Which heading block is the title line (its index, or -1) and the level of the issue's sections."""

    title_index: int
    section_level: int


def outline(headings: Sequence[tuple[int, str]], front_title: str = "") -> Outline:
    """The outline of an issue whose top-level headings are ``(level, text)``, in order.

    With a metadata title, a first ``#`` heading is the title line only when it is the
    only one and names the same thing (``# News`` under ``title: Weekly 12`` is a section).
    """
    title_index = -1
    if headings and headings[0][0] == 1:
        ones = sum(1 for level, _ in headings if level == 1)
        if not front_title or (ones == 1 and _same_title(front_title, headings[0][1])):
            title_index = 0
    rest = [(level, text) for index, (level, text) in enumerate(headings) if index != title_index]
    parts = [level for level, text in rest if not is_link_heading(text)] or [level for level, _ in rest]
    if not parts:
        return Outline(title_index, 2)
    if parts[0] == min(parts):  # the first part is at the shallowest level: that is the sections'
        return Outline(title_index, parts[0])
    counts = Counter(parts)
    repeated = [level for level, count in counts.items() if count >= 2]
    return Outline(title_index, min(repeated or parts))


def _same_title(front: str, line: str) -> bool:
    """Whether a title line repeats the metadata's title (one starts the other, markup aside)."""
    a, b = (re.sub(r"[\W_]+", "", clean_heading(t)).casefold() for t in (front, line))
    return bool(a and b) and (a[:6] == b[:6] or a in b or b in a)


def is_link_heading(text: str) -> bool:
    """A heading that is a link (after an optional short label): an item, not a part of the outline."""
    return led_by_link(text.strip())


def match_bracket(text: str, start: int) -> int | None:
    """The index of the ``]`` closing the ``[`` at ``start`` (brackets nest; ``\\]`` is text)."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def short_label_end(text: str) -> int:
    """Where the text after a short leading label starts (0 when there is no label).

    A label is a few symbols (an emoji), a bracketed tag (``【新闻】``), or a few words
    ending in a colon, bold or not (``**Label:**``, ``_Breaking:_``, ``Label：``).
    """
    pos = 0
    while True:
        start = pos
        symbols = _LEADING_SYMBOLS.match(text, pos)
        if symbols and symbols.end() > pos:
            pos = symbols.end()
        bracket = _BRACKET_LABEL.match(text[pos:])
        if bracket:
            pos += bracket.end()
        words = _LABEL_WORDS.match(text[pos:])
        if words and "](" not in words.group(0) and len(words.group(0).split()) <= 6:
            pos += words.end()
        if pos == start:
            return pos


def led_by_link(text: str) -> bool:
    """True when a link leads ``text``, after an optional short label and ``[tag]`` labels.

    ``[title](url)`` is a link, bold or not (``**[title](url)**``); so is an unclosed
    ``[title`` (a slip the assembly repairs), ``[title]()``, an autolink ``<https://...>``
    and a bare URL. A reference link with no definition (``[text][]``) is text.
    """
    pos = short_label_end(text)
    if emphasis := EMPHASIS_LEAD.match(text, pos):
        pos = emphasis.end()
    if URL_LEAD.match(text, pos):
        return True
    while pos < len(text) and text[pos] == "[":
        close = match_bracket(text, pos)
        if close is None:  # an unclosed '[title' is the item's link, repaired later, unless a link follows
            return not _INNER_LINK.search(text, pos + 1)
        after = close + 1
        if after < len(text) and text[after] == "(":
            return True
        if after < len(text) and text[after] == "[":  # '[a][b](u)': a glued label; '[a][b]': a reference
            second = match_bracket(text, after)
            if second is None:  # '[text][label' continued on the next line: a reference, text here
                return False
            if second + 1 < len(text) and text[second + 1] == "(":
                return True
            after = second + 1
            if not text[after:].startswith((" ", "\t")):
                return False
        rest = text[after:].lstrip(" \t")
        if not rest.startswith("["):
            return False
        pos = len(text) - len(rest)
    return False


def clean_heading(text: str) -> str:
    """A heading's name as plain text: no bold or code marks, no wrapping link, no trailing colon."""
    name = text.strip()
    link = re.fullmatch(r"\[(.*)\]\([^()]*\)", name)
    if link:
        name = link.group(1).strip()
    name = re.sub(r"\[([^\[\]]*)\]\([^()]*\)", r"\1", name)
    name = _INLINE_MARKUP.sub("", name).strip()
    link = re.fullmatch(r"\[(.*)\]\([^()]*\)", name)
    if link:
        name = link.group(1).strip()
    return name.rstrip("：:").strip()
