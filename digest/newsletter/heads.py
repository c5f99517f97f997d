"""An item's first line taken apart: labels, title and source, the link, extra links, the tail.

``[label] [title | source](url) [[extra]](url2) tail``, with the slips editors make:
brackets inside link text, angle-bracketed targets, an unclosed ``[title`` continued on
the next lines, a full-width ``）`` closing the link, a reference link with no definition
(text, not an empty link), and a quote whose source link comes after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from digest.newsletter.blocks import resolve_references
from digest.newsletter.model import Link
from digest.newsletter.outline import EMPHASIS_LEAD, URL_LEAD, clean_heading, match_bracket, short_label_end

__all__ = ["INLINE_LINK", "ItemHead", "join_continuation", "parse_head", "quote_item", "split_source"]

_ANY_BULLET = re.compile(r"^\s*[-*+]\s+")
INLINE_LINK = re.compile(r"\[([^\[\]]*)\]\(([^()\s]*)\)")
_SOURCE_SPLIT = re.compile(r"\s*(?:\s\||\|\s|\s丨\s)\s*")


@dataclass
class ItemHead:
    """The first line of an item, taken apart."""

    labels: list[str] = field(default_factory=list)
    text: str = ""
    url: str | None = None  # None: the line has no link at all
    extras: list[Link] = field(default_factory=list)
    tail: str = ""
    unclosed: bool = False
    fullwidth_paren: bool = False
    glued_label: bool = False  # '[ICLR2022][title](url)': no space after a label


def parse_head(text: str) -> ItemHead:
    """Take apart ``[label] [title | source](url) [[extra]](url2) tail``."""
    head = ItemHead()
    pos = _skip_spaces(text, 0)
    label_end = short_label_end(text[pos:])
    after_label = pos + label_end
    leads = text[after_label : after_label + 1] == "[" or EMPHASIS_LEAD.match(text, after_label)
    if label_end and (leads or URL_LEAD.match(text, after_label)):
        label = clean_heading(text[pos : pos + label_end])
        head.labels.extend([label] if label else [])
        pos = _skip_spaces(text, pos + label_end)
    if lead := URL_LEAD.match(text, pos):  # '<https://x.org> text' or 'https://x.org text'
        head.url, rest = lead.group(1), text[lead.end() :].strip().lstrip("—–-:：|/").strip()
        if "http" in rest or "](" in rest:  # more links after it: the text keeps them
            head.text, head.tail = head.url, rest
        else:
            head.text = rest or head.url
        return head
    if emphasis := EMPHASIS_LEAD.match(text, pos):  # '**[title](url)** text': the bold is the link's
        marker, text = emphasis.group(1), text[:pos] + text[emphasis.end() :]
        parsed = parse_head(text)
        parsed.labels[:0] = [label for label in head.labels if label not in parsed.labels]
        stripped = parsed.tail.lstrip()
        parsed.tail = stripped[len(marker) :].lstrip(" —–:：") if stripped.startswith(marker) else parsed.tail
        return parsed
    while pos < len(text) and text[pos] == "[":
        close = match_bracket(text, pos)
        if close is None:
            head.unclosed = True
            head.text = text[pos + 1 :].strip()
            return head
        after = _skip_spaces(text, close + 1)
        if after == close + 1 and _is_reference(text, after):  # '[text][label]' with no definition
            head.text = text[pos:].strip()
            return head
        is_label = (
            close + 1 < len(text)
            and text[close + 1] != "("
            and after < len(text)
            and text[after] == "["
            and "[" not in text[pos + 1 : close]
        )
        if not is_label:
            head.text = text[pos + 1 : close].strip()
            if close + 1 < len(text) and text[close + 1] == "(":
                url, end, fullwidth = _destination(text, close + 2)
                if end is None:
                    head.unclosed = True
                    return head
                head.url, head.fullwidth_paren = url, fullwidth
                pos = end
            else:
                head.url = ""
                pos = close + 1
            head.extras, head.tail = _extra_links(text[pos:])
            return head
        head.labels.append(text[pos + 1 : close].strip())
        head.glued_label = head.glued_label or after == close + 1
        pos = after
    head.text = text[pos:].strip()
    return head


def _extra_links(text: str) -> tuple[list[Link], str]:
    links: list[Link] = []
    pos = 0
    while True:
        pos = _skip_spaces(text, pos)
        if pos >= len(text) or text[pos] != "[":
            return links, text[pos:]
        close = match_bracket(text, pos)
        if close is None or close + 1 >= len(text) or text[close + 1] != "(":
            return links, text[pos:]
        url, end, _ = _destination(text, close + 2)
        if end is None:
            return links, text[pos:]
        label = text[pos + 1 : close].strip()
        if label.startswith("[") and label.endswith("]"):
            label = label[1:-1].strip()
        links.append(Link(label=label, url=url.strip()))
        pos = end


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _destination(text: str, start: int) -> tuple[str, int | None, bool]:
    """The link target starting at ``start`` (just after '('): (url, end, closed-by-'）')."""
    angled = re.match(r"\s*<([^<>\n]*)>\s*(?:\"[^\"]*\"\s*)?\)", text[start:])
    if angled:  # '(<https://x.org/a b>)': CommonMark's bracketed target may hold spaces
        return angled.group(1).strip(), start + angled.end(), False
    depth = 0
    url_end: int | None = None  # a space ends the URL; a '"title"' may follow
    for index in range(start, len(text)):
        char = text[index]
        if char.isspace() and url_end is None and text[start:index].strip():
            url_end = index
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return _unbracket(text[start : url_end or index].strip()), index + 1, False
            depth -= 1
    fullwidth = text.find("）", start)
    if fullwidth != -1:
        return text[start:fullwidth].strip(), fullwidth + 1, True
    return text[start:].strip(), None, False


def quote_item(body: list[tuple[int, str]]) -> tuple[ItemHead, list[tuple[int, str]]] | None:
    """A number alone on its line, then a quote and its source (``——[who](url)``): the quote is the item.

    Its first line is the title, the source's link is the item's link and the source's
    text its source; the lines between stay as its text.
    """
    lines = [(no, text) for no, text in body if text.strip()]
    if not lines:
        return None
    head = ItemHead(text=lines[0][1].strip().lstrip(">").strip())
    rest = [(no, text) for no, text in body if no != lines[0][0]]
    for no, text in reversed(lines[1:]):
        link = INLINE_LINK.search(text)
        if link is None:
            continue
        head.url, head.tail = link.group(2), ""
        leftover = INLINE_LINK.sub("", text).strip(" \t>-—–~·:：")
        if not leftover and len(INLINE_LINK.findall(text)) == 1:  # a line that is only the source
            rest = [(n, t) for n, t in rest if n != no]
            head.tail = ""
        return _with_source(head, link.group(1)), rest
    return head, rest


def _with_source(head: ItemHead, source: str) -> ItemHead:
    head.text = f"{head.text} | {source.strip()}" if source.strip() else head.text
    return head


def _is_reference(text: str, start: int) -> bool:
    """``[label]`` or ``[]`` at ``start`` not followed by ``(``: the second half of a reference link."""
    if start >= len(text) or text[start] != "[":
        return False
    close = match_bracket(text, start)
    if close is None or text[close + 1 : close + 2] == "(":
        return False
    return not text[close + 1 :].lstrip(" \t").startswith("[")  # '[a][b] [title](url)': two labels


def _unbracket(url: str) -> str:
    """``(<https://x.org/a b>)``: CommonMark's angle-bracketed destination, without its brackets."""
    return url[1:-1].strip() if url.startswith("<") and url.endswith(">") else url


def join_continuation(
    head_text: str, body: list[tuple[int, str]], references: Mapping[str, str] | None = None
) -> tuple[ItemHead, int] | None:
    """An unclosed ``[title`` may continue on the next lines; join up to three of them."""
    joined = head_text
    for count, (_, raw) in enumerate(body[:3], start=1):
        if not raw.strip() or _ANY_BULLET.match(raw) or raw.startswith("#"):
            return None
        joined = f"{joined.rstrip()} {raw.strip()}"
        head = parse_head(resolve_references(joined, dict(references)) if references else joined)
        if not head.unclosed:
            return head, count
    return None


def split_source(text: str) -> tuple[str, str]:
    """``title | source``: the source is after the last separator bar."""
    parts = _SOURCE_SPLIT.split(text)
    if len(parts) >= 2 and parts[-1].strip():
        title = text[: text.rfind(parts[-1])].rstrip().rstrip("|丨").strip()
        return title, parts[-1].strip()
    return text.rstrip("|丨 ").strip(), ""
