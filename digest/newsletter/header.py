"""The header of an issue: title, tagline, intro, warm-up bullets and preamble prose.

Everything before the first section is read here, block by block; the scanner
(:mod:`.scan`) hands each header block over and reads the sections itself.
"""

from __future__ import annotations

import re

from digest.i18n import N_
from digest.newsletter.blocks import Block
from digest.newsletter.model import Severity
from digest.newsletter.rawparts import LABEL_LINE, FindingLog, RawProse, RawSection

__all__ = ["HeaderReader"]

WARNING = Severity.WARNING

_LINK = re.compile(r"\[([^\[\]]*)\]\([^()]*\)")
_HASH_TITLE = re.compile(r"^#+\s*(.*?)\s*#*\s*$")
_TAGLINE = re.compile(r"^\*\*(.+?)\*\*$")
_HTML_ONLY = re.compile(r"^<(font|img|center|div|span|br)\b.*$", re.I)
_BULLET_LINE = re.compile(r"^[-*+](?:\s+(.*))?$")
_ITEM_LABELS = frozenset({"摘要", "**摘要**"})  # a summary line: the bullet above it is an item


class HeaderReader:
    """The header's blocks: title, tagline, 导读 intro, warm-up bullets, preamble prose."""

    log: FindingLog
    lines: list[str]
    title: tuple[int, str] | None
    tagline: str | None
    intro: list[str]
    intro_line: int
    notes: list[str]
    warmup: list[tuple[int, str]]
    preamble: list[RawProse]
    sections: list[RawSection]
    mode: str
    left_out: list[RawProse]

    def text(self, index: int) -> str:
        raise NotImplementedError

    def footer_at(self, block: Block) -> int | None:
        raise NotImplementedError

    def add_prose(self, into: list[RawProse], block: Block, end: int | None = None) -> None:
        raise NotImplementedError

    def block_lines(self, block: Block, end: int | None = None) -> list[str]:
        raise NotImplementedError

    def leave_out(self, block: Block) -> None:
        """A block of boilerplate (a skipped section, the footer): kept aside, so lint can show it."""
        lines = self.block_lines(block)
        if any(s.strip() for s in lines):
            self.left_out.append(RawProse(line=block.start + 1, lines=lines))

    def is_decoration(self, block: Block) -> bool:
        """Raw HTML that only lays out the page (``<center>``, ``<img>``) and links nowhere."""
        if block.kind not in ("para", "html") or not _HTML_ONLY.match(self.lines[block.start].strip()):
            return False
        return not any("http" in self.text(i) for i in range(block.start, block.end))

    def item_shaped(self, block: Block) -> bool:
        """A bullet with no link that still carries an item's own lines: a summary or a labelled link."""
        for index in range(block.start + 1, min(block.end, block.start + 4)):
            label = LABEL_LINE.match(self.text(index).strip())
            if label and (
                label.group(1) in _ITEM_LABELS or label.group(2).startswith(("http://", "https://"))
            ):
                return True
        return False

    def set_title(self, line: int, text: str) -> None:
        """The title line, as plain text; a link in it stays, as the first line of the preamble."""
        plain = _LINK.sub(r"\1", text)
        self.title = (line, plain)
        if plain != text or "http" in text:
            self.preamble.append(RawProse(line=line, lines=[text]))

    def header_block(self, block: Block) -> None:
        first = self.lines[block.start].strip()
        if block.kind == "hr":
            return
        if block.kind == "para" and self.title is None and not self.sections and first.startswith("#"):
            match = _HASH_TITLE.match(first)  # '####### t': more hashes than CommonMark allows
            self.set_title(block.start + 1, match.group(1) if match else first)
            return
        if block.kind == "quote":
            self.blockquote(block)
            return
        if self.footer_at(block) == block.start:
            self.mode = "footer"
            return
        tagline = _TAGLINE.match(first) if "](" not in first and "http" not in first else None
        if block.kind == "para" and tagline and self.tagline is None and not self.warmup:
            self.tagline = tagline.group(1).strip()  # its first line; what follows is read on its own
            if block.end - block.start > 1:
                self.header_block(Block("para", block.start + 1, block.end))
            return
        if self.is_decoration(block):
            return
        if block.kind == "item" and not block.ordered:
            self.warmup_entries(block)
            return
        self.notes.extend(s.strip() for s in self.block_lines(block) if s.strip())
        self.add_prose(self.preamble, block)

    def blockquote(self, block: Block) -> None:
        """``> 导读：`` starts the intro; any other quote is preamble prose.

        Lines run on without ``>`` (CommonMark's lazy continuation) are not the quote's:
        they are read as a paragraph of their own, as the editor wrote them.
        """
        for lazy in range(block.start + 1, block.end):
            if self.text(lazy).strip() and not self.text(lazy).lstrip().startswith(">"):
                self.blockquote(Block("quote", block.start, lazy))
                self.header_block(Block("para", lazy, block.end))
                return
        quote = None
        for index in range(block.start, block.end):
            text = self.text(index).strip().lstrip(">").strip()
            intro = re.match(r"^导读\s*[：:]?\s*(.*)$", text)
            if intro:
                quote, self.intro_line = "intro", index + 1
                if intro.group(1):
                    self.intro.append(intro.group(1))
            elif quote == "intro" and text:
                self.intro.append(text)
            elif text:
                quote = "note"
                self.notes.append(text)
        if quote != "intro":
            self.add_prose(self.preamble, block)

    def warmup_entries(self, block: Block) -> None:
        """Each bullet is an entry; an unbulleted ``label：text`` line starts one too (with a warning)."""
        open_entry = blank = False
        for index in range(block.start, block.end):
            raw = self.text(index)
            stripped = raw.strip()
            if not stripped:
                blank = open_entry
                continue
            bullet = _BULLET_LINE.match(stripped)
            if bullet:
                self.warmup.append((index + 1, bullet.group(1) or ""))
                open_entry, blank = True, False
            elif open_entry and blank and raw[:1].isspace():  # a paragraph of the entry: a quote, a note
                last_no, last = self.warmup[-1]
                indent = len(raw) - len(raw.lstrip())
                self.warmup[-1] = (last_no, f"{last}\n\n{raw[min(indent, 4) :].rstrip()}")
                blank = False
            elif not open_entry or blank:
                open_entry = blank = False
                self.notes.append(stripped)
            elif not raw[:1].isspace() and LABEL_LINE.match(stripped):
                self.log.note(
                    index + 1,
                    "warmup-missing-bullet",
                    WARNING,
                    N_("warm-up entry without '- '; read as its own entry"),
                )
                self.warmup.append((index + 1, stripped))
            else:
                last_no, last = self.warmup[-1]
                self.warmup[-1] = (last_no, f"{last} {stripped}".strip())
