"""The token-stream reader: an issue's top-level blocks, as a CommonMark reader sees them.

markdown-it-py parses the body once; its token stream gives each top-level block
(heading, paragraph, list item, quote, table, code, HTML) with its lines. HTML
comments are hidden and code is marked, at every depth, so nothing inside them is
ever taken for an item, a heading or a link. Two repairs are made on the stream
for the way newsletters are written: a ``---`` under a line is a rule (editors mean
one), not a setext heading; and a bare ``-`` at the start of a line is an item,
even where CommonMark would read it as the text of the paragraph above.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Block", "Blocks", "read_blocks", "resolve_references", "without_liquid"]

_LIQUID_TAG_LINE = re.compile(r"^\s*\{%-?\s*(\w+)([^%]*)-?%\}\s*$")
_LIQUID_ASSIGN = re.compile(r"""^\s*(\w+)\s*=\s*(["'])(.*?)\2\s*$""")
_LIQUID_OUTPUT = re.compile(r"\{\{-?\s*(\w+)\s*-?\}\}")
_SETEXT_H1 = re.compile(r"^ {0,3}=+\s*$")
_BARE_BULLET = re.compile(r"^[-*+](?:\s|$)")
# '1、[a](u)', '2）text', '**3. x**': a numbered paragraph, each line of which starts an item of its own
_NUMBERED_LINE = re.compile(r"^(?:\*\*)?\s*\d{1,3}\s*[、．.)）](?!\d)")
_KINDS = {
    "paragraph_open": "para",
    "blockquote_open": "quote",
    "table_open": "table",
    "fence": "code",
    "code_block": "code",
    "hr": "hr",
}


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level block: ``kind`` is heading, item, para, quote, table, code, html, comment or hr.

    ``start``/``end`` are 0-based indexes into the file's lines (end excluded);
    ``level`` is a heading's level; ``ordered`` tells a numbered list item from a bullet.
    """

    kind: str
    start: int
    end: int
    level: int = 0
    text: str = ""
    ordered: bool = False


@dataclass(frozen=True, slots=True)
class Blocks:
    """The blocks in order, and the lines hidden in comments or standing in code."""

    blocks: tuple[Block, ...]
    hidden: frozenset[int]
    code: frozenset[int]
    unclosed_comment: int | None  # the line index of a comment never closed with '-->'
    references: dict[str, str]  # reference-style link labels (casefolded) -> URL


_REFERENCE = re.compile(r"\[((?:[^\[\]\\]|\\.)+)\](?:\[((?:[^\[\]\\]|\\.)*)\]|(?![(\[:]))")


def resolve_references(text: str, references: dict[str, str]) -> str:
    """``[t][ref]``, ``[t][]`` and ``[ref]`` written as inline links, for the line-level repairs."""

    def inline(match: re.Match[str]) -> str:
        label = match.group(2) if match.group(2) else match.group(1)
        url = references.get(" ".join(label.split()).casefold())
        if url is None:
            return match.group(0)
        return f"[{match.group(1)}]({url})"

    return _REFERENCE.sub(inline, text)


@functools.cache
def _parser():  # type: ignore[no-untyped-def]
    from markdown_it import MarkdownIt

    # Only the block structure is needed here: inline parsing is left to the renderer.
    return MarkdownIt("commonmark").enable("table").disable(["lheading", "inline", "text_join"])


def without_liquid(lines: list[str], start: int) -> list[str]:
    """The body as a Jekyll site shows it, for the Liquid it uses most, line for line (numbers kept).

    ``{% assign x = "..." %}`` values fill ``{{ x }}``; ``{% highlight lang %}`` and
    ``{% endhighlight %}`` are a code fence; any other line that is only a tag (``{% include
    sponsor.html %}``) is left blank, as the site's build replaces it with a file digest
    does not have.
    """
    if not any("{%" in line or "{{" in line for line in lines[start:]):
        return lines
    values: dict[str, str] = {}
    out = list(lines[:start])
    for line in lines[start:]:
        tag = _LIQUID_TAG_LINE.match(line)
        if tag is None:
            out.append(
                _LIQUID_OUTPUT.sub(lambda m: values.get(m.group(1), m.group(0)), line) if values else line
            )
            continue
        name, rest = tag.group(1), tag.group(2)
        if name == "assign" and (assign := _LIQUID_ASSIGN.match(rest)):
            values[assign.group(1)] = assign.group(3)
        out.append(
            {"highlight": "```" + rest.split()[0] if rest.split() else "```", "endhighlight": "```"}.get(
                name, ""
            )
        )
    return out


def read_blocks(lines: list[str], start: int) -> Blocks:
    """The blocks of ``lines[start:]``; line indexes count from the top of the file."""
    env: dict[str, object] = {}
    tokens = _parser().parse("\n".join(lines[start:]), env)
    covered: set[int] = set()
    blocks: list[Block] = []
    hidden: set[int] = set()
    code: set[int] = set()
    unclosed: int | None = None
    for index, token in enumerate(tokens):
        if token.map is None:
            continue
        first, last = token.map[0] + start, token.map[1] + start
        if token.level == 0:
            covered.update(range(first, last))
        if token.type == "html_block" and token.content.lstrip().startswith("<!--"):
            hidden.update(range(first, last))
            if "-->" not in token.content and unclosed is None:
                unclosed = first
        elif token.type in ("fence", "code_block"):
            code.update(range(first, last))
        if token.level == 1 and token.type == "list_item_open":
            blocks.append(Block("item", first, last, ordered=token.markup in (".", ")")))
        elif token.level != 0:
            continue
        elif token.type == "heading_open":
            blocks.append(
                Block("heading", first, last, level=int(token.tag[1]), text=tokens[index + 1].content)
            )
        elif token.type == "html_block":
            blocks.append(Block("comment" if first in hidden else "html", first, last))
        elif token.type in _KINDS:
            blocks.append(Block(_KINDS[token.type], first, last))
    refs = env.get("references") or {}
    references = {str(k).casefold(): str(v.get("href", "")) for k, v in refs.items()}  # type: ignore[union-attr]
    if references:  # definition lines are in no block: hide them
        hidden.update(i for i in range(start, len(lines)) if i not in covered and lines[i].strip())
    split = _bare_bullets(_setext_titles(blocks, lines), lines, hidden, code)
    return Blocks(tuple(split), frozenset(hidden), frozenset(code), unclosed, references)


def _setext_titles(blocks: list[Block], lines: list[str]) -> list[Block]:
    """``Title`` over a line of ``=`` is a first-level heading (``---`` under a line stays a rule)."""
    out: list[Block] = []
    for block in blocks:
        last = block.end - 1
        if block.kind != "para" or last <= block.start or not _SETEXT_H1.match(lines[last]):
            out.append(block)
            continue
        if last - 1 > block.start:
            out.append(Block("para", block.start, last - 1))
        out.append(Block("heading", last - 1, block.end, level=1, text=lines[last - 1].strip()))
    return out


def _bare_bullets(blocks: list[Block], lines: list[str], hidden: set[int], code: set[int]) -> list[Block]:
    """A bare ``-`` line inside a paragraph, an item or raw HTML starts an item of its own.

    So does each line of a numbered paragraph (``1、[a](u)`` then ``2、[b](v)``) that starts
    with the next number: numbered lines written one under another are items one by one.
    """
    out: list[Block] = []
    for block in blocks:
        if block.kind not in ("para", "item", "html"):
            out.append(block)
            continue
        numbered = block.kind == "para" and _NUMBERED_LINE.match(lines[block.start].lstrip()) is not None
        cut = block.start
        for index in range(block.start + 1, block.end):
            if index in hidden or index in code:
                continue
            if numbered and _NUMBERED_LINE.match(lines[index]):
                out.append(Block(block.kind, cut, index))
                cut = index
                continue
            if not _BARE_BULLET.match(lines[index]):
                continue
            out.append(Block(block.kind, cut, index, ordered=block.ordered))
            block = Block("item", index, block.end)
            numbered, cut = False, index
        out.append(Block(block.kind, cut, block.end, ordered=block.ordered))
    return out
