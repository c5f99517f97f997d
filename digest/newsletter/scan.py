"""The scanner: one pass over an issue's blocks (from :mod:`.blocks`), sorting them into parts.

Decoding, control characters, metadata and Liquid come first; the issue's outline
(:mod:`.outline`) says which heading is the title and at which level sections start.
Then each top-level block is header (:mod:`.header`), a section or subsection heading,
an item (a list item, numbered paragraph or heading a link leads) or its body, prose,
or boilerplate (back issues, a skipped section, the footer after the last heading)
that is left out and kept aside for lint. An item's body is every block after it until
the next item or heading, as written, so the assembly can repair it line by line.
Oddities are noted in a :class:`FindingLog` with their line; nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from digest.i18n import N_
from digest.newsletter.blocks import Block, Blocks, read_blocks, resolve_references, without_liquid
from digest.newsletter.header import HeaderReader
from digest.newsletter.markup import C0_CONTROLS, hard_wrapped
from digest.newsletter.meta import read_metadata
from digest.newsletter.model import Severity
from digest.newsletter.outline import clean_heading, is_link_heading, led_by_link, outline
from digest.newsletter.rawparts import (
    BACK_ISSUES,
    LABEL_LINE,
    FindingLog,
    RawItem,
    RawProse,
    RawSection,
    SectionRules,
)

__all__ = [
    "BACK_ISSUES",
    "LABEL_LINE",
    "FindingLog",
    "RawItem",
    "RawProse",
    "RawSection",
    "Scan",
    "SectionRules",
    "clean_heading",
    "scan_text",
]

FATAL, ERROR, WARNING = Severity.FATAL, Severity.ERROR, Severity.WARNING

_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s+(.*))?$")
_NUMBERED = re.compile(r"^(\*\*)?\s*\d{1,3}\s*[、．.)）](?!\d)\s*(.*)$")
_FOOTER = re.compile(
    r"^(?:(?:editor|project|wechat id|license)\s*[:：]|!\[wechat_qrcode\]|<a rel=\"license\")",
    re.I,
)
_CONTROL = re.compile(f"[{C0_CONTROLS}\x7f\ufffe\uffff]")  # what XML forbids, and DEL


@dataclass(frozen=True)
class Scan:
    """What one pass over a file found, before any item is taken apart."""

    front: dict[str, Any]
    empty: bool
    title: tuple[int, str] | None
    tagline: str
    intro: str
    intro_line: int
    notes: tuple[str, ...]
    warmup: tuple[tuple[int, str], ...]
    sections: tuple[RawSection, ...]
    preamble: tuple[RawProse, ...] = ()
    front_lines: dict[str, int] = field(default_factory=dict)  # metadata key -> its line, for findings
    left_out: tuple[RawProse, ...] = ()  # boilerplate left out by rule (back issues, skipped sections)
    references: dict[str, str] = field(default_factory=dict)  # reference-link label -> URL
    wrapped: bool = False  # the prose is wrapped at a fixed width: a line break is a space


_FRONT_KEY = re.compile(r"^\s*[\"']?([A-Za-z_][\w-]*)[\"']?\s*[:=]")


def _front_lines(lines: list[str], body_start: int) -> dict[str, int]:
    """The line (1-based) of each metadata key, so a finding about a value can point at it."""
    found: dict[str, int] = {}
    for index, line in enumerate(lines[:body_start]):
        if match := _FRONT_KEY.match(line):
            found.setdefault(match.group(1), index + 1)
    return found


def scan_text(data: bytes | str, log: FindingLog, rules: SectionRules | None = None) -> Scan:
    """Decode ``data`` and sort its blocks; every oddity is noted in ``log``."""
    text = decode(data, log) if isinstance(data, bytes) else data.lstrip("\ufeff")
    text = without_control_characters(text, log)
    lines = _LINE_SPLIT.split(text)
    empty = not text.strip()
    if empty:
        log.note(0, "empty-file", FATAL, N_("the file is empty: not an issue yet"))
    front, body_start = read_metadata(lines, log)
    lines = without_liquid(lines, body_start)
    blocks = read_blocks(lines, body_start)
    if blocks.unclosed_comment is not None:
        line = blocks.unclosed_comment + 1
        log.note(
            line, "unclosed-comment", WARNING, N_("'<!--' is never closed with '-->': all after it is hidden")
        )
    front_title = front["title"].strip() if isinstance(front.get("title"), str) else ""
    scanner = BlockScanner(log, lines, blocks, rules or SectionRules(), front_title)
    scanner.walk()
    intro = " ".join(scanner.intro).strip()
    preamble = scanner.preamble
    lead = not intro and not scanner.intro_line and not scanner.warmup  # no 导读, no warm-up news
    if lead and preamble and _is_paragraph(preamble[0]):  # the first paragraph is the intro
        intro, preamble = " ".join(s.strip() for s in preamble[0].lines if s.strip()), preamble[1:]
    return Scan(
        front=front,
        empty=empty,
        title=scanner.title,
        tagline=scanner.tagline or "",
        intro=intro,
        intro_line=scanner.intro_line,
        notes=tuple(scanner.notes),
        warmup=tuple(scanner.warmup),
        sections=tuple(scanner.sections),
        preamble=tuple(preamble),
        front_lines=_front_lines(lines, body_start),
        left_out=tuple(scanner.left_out),
        references=blocks.references,
        wrapped=hard_wrapped(
            [line for i, line in enumerate(lines) if i >= body_start and i not in blocks.code]
        ),
    )


def _is_paragraph(prose: RawProse) -> bool:
    """A preamble block that can stand as the intro: plain paragraph text, not a quote or table."""
    first = prose.lines[0].lstrip() if prose.lines else ""
    return (
        bool(first)
        and not first.startswith((">", "|", "!", "<", "```", "~~~", "#"))
        and not any(not line.strip() for line in prose.lines)
    )


def decode(data: bytes, log: FindingLog) -> str:
    """UTF-8 text; bad bytes are replaced and noted (a BOM is dropped)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        log.note(
            line,
            "not-utf8",
            ERROR,
            N_(
                "bytes that are not UTF-8 (shown as \ufffd); save the file as UTF-8 "
                "(first bad byte at line %(line)s)"
            ),
            line=line,
        )
        return data.decode("utf-8", errors="replace")


def without_control_characters(text: str, log: FindingLog) -> str:
    """Characters no reader can see and XML forbids (pasted from other tools) are removed."""
    match = _CONTROL.search(text)
    if match is None:
        return text
    line = text.count("\n", 0, match.start()) + 1
    log.note(
        line,
        "control-character",
        WARNING,
        N_("invisible control character %(character)s removed"),
        character=repr(match.group(0)),
    )
    return _CONTROL.sub("", text)


class BlockScanner(HeaderReader):
    """One pass over the blocks, sorting each into header, sections, items, prose or boilerplate.

    It only sorts; what an item's lines mean is :mod:`.assemble`'s job.
    """

    def __init__(
        self,
        log: FindingLog,
        lines: list[str],
        blocks: Blocks,
        rules: SectionRules,
        front_title: str = "",
    ):
        self.log, self.lines, self.blocks, self.rules = log, lines, blocks, rules
        headings = [b for b in blocks.blocks if b.kind == "heading"]
        shape = outline([(b.level, b.text) for b in headings], front_title)
        self.title_block = headings[shape.title_index] if shape.title_index >= 0 else None
        self.section_level = shape.section_level
        self.last_heading = max((b.start for b in headings), default=-1)
        self.left_out: list[RawProse] = []
        self.title: tuple[int, str] | None = None
        self.tagline: str | None = None
        self.intro: list[str] = []
        self.intro_line = 0
        self.notes: list[str] = []
        self.warmup: list[tuple[int, str]] = []
        self.preamble: list[RawProse] = []
        self.sections: list[RawSection] = []
        self.item: RawItem | None = None
        self.item_end = 0  # the item's body is read up to here
        self.prose: RawProse | None = None  # the prose block being continued
        self.prose_touched = False  # the last block was prose
        self.mode = "header"  # header | section | footer | skip
        self.subsection = ""
        self.skip_level = 0  # a skipped subsection: its level
        self.style = ""  # the section's items: "bullet" or "numbered", set by its first item

    def text(self, index: int) -> str:
        """A line as the repairs see it: blank in a comment, reference links written inline."""
        if index in self.blocks.hidden:
            return ""
        line = self.lines[index]
        if self.blocks.references and "[" in line and index not in self.blocks.code:
            return resolve_references(line, self.blocks.references)
        return line

    def walk(self) -> None:
        for block in self.blocks.blocks:
            self.block(block)
        self.close_item(len(self.lines))

    def block(self, block: Block) -> None:
        if block.kind == "comment":
            return
        if not self.prose_touched:  # prose continues only over prose (and comments)
            self.prose = None
        self.prose_touched = False
        if block.kind == "heading":
            self.heading(block)
        elif self.mode == "header":
            self.header_block(block)
        elif self.mode == "footer":
            if self.is_bullet(block) and "](" in self.lines[block.start] and self.sections:
                self.mode = "section"
                self.section_block(block)
            else:
                self.leave_out(block)
        elif self.mode == "section":
            self.section_block(block)
        else:
            self.leave_out(block)

    # -- headings -------------------------------------------------------------------------------

    def heading(self, block: Block) -> None:
        no = block.start + 1
        if block is self.title_block:
            if self.title is None:
                self.set_title(no, block.text.strip())
        elif block.level <= self.section_level:
            self.section_heading(block)
        elif self.mode == "header":
            self.add_prose(self.preamble, block)
        elif self.mode == "section" and self.sections[-1].kind == "items" and is_link_heading(block.text):
            self.start_item(block, block.text.strip())
        elif (
            self.mode in ("section", "skip") and self.sections and (self.mode == "section" or self.skip_level)
        ):
            self.subsection_heading(block)
        else:
            self.leave_out(block)

    def section_heading(self, block: Block) -> None:
        no = block.start + 1
        name = clean_heading(block.text)
        self.close_item(block.start)
        self.prose, self.subsection, self.skip_level, self.style = None, "", 0, ""
        kind = self.rules.kind(name)
        if kind == "skip":
            self.mode = "skip"
            self.leave_out(block)
            return
        self.mode = "section"
        self.sections.append(RawSection(name=name, line=no, kind=kind))
        self.heading_links(block)

    def heading_links(self, block: Block) -> None:
        """A heading's links stay with its part, as a line of prose: its name is plain text."""
        if "](" in block.text or "http" in block.text:
            self.sections[-1].prose.append(
                RawProse(line=block.start + 1, lines=[block.text.strip()], subsection=self.subsection)
            )

    def subsection_heading(self, block: Block) -> None:
        if self.skip_level and block.level > self.skip_level:
            self.leave_out(block)
            return
        self.close_item(block.start)
        self.prose, self.skip_level = None, 0
        name = clean_heading(block.text)
        kind = self.rules.kind(name)
        if kind == "skip":
            self.mode, self.skip_level = "skip", block.level
            self.leave_out(block)
            return
        self.mode = "section"
        self.subsection = name
        section = self.sections[-1]
        if name not in section.subsections:
            section.subsections.append(name)
        self.heading_links(block)

    # -- sections -------------------------------------------------------------------------------

    def section_block(self, block: Block) -> None:
        if block.kind == "hr":
            self.close_item(block.start)
            return
        section = self.sections[-1]
        head = self.item_head(block) if section.kind == "items" else None
        if head is not None:
            self.start_item(block, head)
            return
        if self.item is not None:
            self.extend_item(block.end)
            return
        footer = self.footer_at(block)
        if footer == block.start:
            self.mode = "footer"
            self.leave_out(block)
            return
        if self.is_decoration(block):
            return
        self.add_prose(section.prose, block, footer)

    def start_item(self, block: Block, head: str) -> None:
        self.close_item(block.start)
        self.prose = None
        self.item = RawItem(line=block.start + 1, head=head, subsection=self.subsection)
        self.item_end = block.start + 1
        self.sections[-1].items.append(self.item)
        self.extend_item(block.end)

    def item_head(self, block: Block) -> str | None:
        """The head of the item ``block`` starts, in the section's style; None when it is no item."""
        raw = self.text(block.start)
        if block.kind == "item" and not raw[:1].isspace():
            style = "numbered" if block.ordered else "bullet"
            match = _MARKER.match(raw.rstrip())
            head = (match.group(1) or "") if match else raw.strip()
            if self.style in ("", style) and (led_by_link(head) or self.item_shaped(block)):
                self.style = style
                return head
            return None
        if block.kind == "para" and self.style in ("", "numbered"):
            match = _NUMBERED.match(raw.strip())
            if match:
                head = match.group(2)
                if match.group(1) and "**" in head:  # '**1、title**': the bold is the number's
                    head = head.replace("**", "", 1)
                if head.strip() and not led_by_link(head):
                    return None
                self.style = "numbered"
                return head
        return None

    def extend_item(self, end: int) -> None:
        """The item's body runs on to ``end``; a footer line stops it (and what follows is dropped)."""
        item = self.item
        if item is None:
            return
        code = set(item.code)
        for index in range(self.item_end, end):
            text = self.text(index)
            if index > self.last_heading and _FOOTER.match(text.strip()):
                self.close_item(index)
                self.mode = "footer"
                return
            item.body.append((index + 1, text))
            if index in self.blocks.code:
                code.add(index + 1)
        item.code = frozenset(code)
        self.item_end = end

    def close_item(self, end: int) -> None:
        if self.item is not None and self.mode == "section":
            self.extend_item(end)
        self.item = None

    def add_prose(self, into: list[RawProse], block: Block, end: int | None = None) -> None:
        lines = self.block_lines(block, end)
        if not any(s.strip() for s in lines):
            return
        self.prose_touched = True
        if self.prose is not None and into and into[-1] is self.prose:
            gap = range(self.prose.line - 1 + len(self.prose.lines), block.start)
            self.prose.lines.extend([self.text(i) for i in gap] + lines)
        else:
            self.prose = RawProse(line=block.start + 1, lines=lines, subsection=self.subsection)
            into.append(self.prose)
        if end is not None and end < block.end:
            self.mode = "footer"

    def block_lines(self, block: Block, end: int | None = None) -> list[str]:
        return [self.text(i) for i in range(block.start, block.end if end is None else end)]

    def footer_at(self, block: Block) -> int | None:
        """The first footer line (Editor:, the QR code, the license) of a block, if any.

        A footer closes the issue: such a line with a heading after it is content.
        """
        if block.kind == "code" or block.start < self.last_heading:
            return None
        for index in range(block.start, block.end):
            if _FOOTER.match(self.text(index).strip()):
                return index
        return None

    def is_bullet(self, block: Block) -> bool:
        return block.kind == "item" and not block.ordered and not self.lines[block.start][:1].isspace()
