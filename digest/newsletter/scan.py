"""The line-level scanner: one pass sorting an issue file's lines into their parts.

Decoding, control characters and front matter come first; then each line is
header (title, tagline, 导读 intro, warm-up bullets), a section heading, an
item's first line or one of its body lines, or boilerplate (back issues, QR
code, footer) that is dropped. Oddities are noted in a :class:`FindingLog`
with their line; nothing here raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from digest.newsletter.markup import C0_CONTROLS
from digest.newsletter.model import Finding, Severity

__all__ = [
    "BACK_ISSUES",
    "LABEL_LINE",
    "FindingLog",
    "LineScanner",
    "RawItem",
    "RawSection",
    "Scan",
    "clean_heading",
    "scan_text",
]

FATAL, ERROR, WARNING = Severity.FATAL, Severity.ERROR, Severity.WARNING

BACK_ISSUES = "往期回顾"
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_HEADING = re.compile(r"^(#+)\s*(.*?)\s*#*\s*$")
_HR = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
_TOP_BULLET = re.compile(r"^[-*+](?:\s+(.*))?$")
_TAGLINE = re.compile(r"^\*\*(.+?)\*\*$")
_FOOTER = re.compile(
    r"^(?:(?:editor|project|wechat id|license)\s*[:：]|!\[wechat_qrcode\]|<a rel=\"license\")",
    re.I,
)
_HTML_ONLY = re.compile(r"^<(font|img|center|div|span|br)\b.*$", re.I)
LABEL_LINE = re.compile(r"^([^\s：:\[\]()（）<>*#/]{1,12}?)\s*[：:]\s*(.*)$")
_CONTROL = re.compile(f"[{C0_CONTROLS}\x7f\ufffe\uffff]")  # what XML forbids, and DEL


class FindingLog:
    """The findings noted while reading one file, shared by the scanner and the assembly."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def note(self, line: int, code: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(line, code, severity, message))

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)

    def sorted(self) -> tuple[Finding, ...]:
        """By line, then severity, then code: the order lint and previews show."""
        return tuple(sorted(self.findings, key=lambda f: (f.line, f.severity.rank, f.code)))


@dataclass
class RawItem:
    """An item's first line and the lines under it, as written."""

    line: int
    head: str
    body: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class RawSection:
    """A ``## `` heading and the raw items under it."""

    name: str
    line: int
    items: list[RawItem] = field(default_factory=list)


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


def scan_text(data: bytes | str, log: FindingLog) -> Scan:
    """Decode ``data`` and sort its lines; every oddity is noted in ``log``."""
    text = decode(data, log) if isinstance(data, bytes) else data.lstrip("\ufeff")
    text = without_control_characters(text, log)
    lines = _LINE_SPLIT.split(text)
    empty = not text.strip()
    if empty:
        log.note(0, "empty-file", FATAL, "the file is empty: not an issue yet")
    front, body_start = front_matter(lines, log)
    scanner = LineScanner(log)
    scanner.walk(lines, body_start)
    return Scan(
        front=front,
        empty=empty,
        title=scanner.title,
        tagline=scanner.tagline or "",
        intro=" ".join(scanner.intro).strip(),
        intro_line=scanner.intro_line,
        notes=tuple(scanner.notes),
        warmup=tuple(scanner.warmup),
        sections=tuple(scanner.sections),
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
            f"bytes that are not UTF-8 (shown as \ufffd); save the file as UTF-8 "
            f"(first bad byte at line {line})",
        )
        return data.decode("utf-8", errors="replace")


def without_control_characters(text: str, log: FindingLog) -> str:
    """Characters no reader can see and XML forbids (pasted from other tools) are removed."""
    match = _CONTROL.search(text)
    if match is None:
        return text
    line = text.count("\n", 0, match.start()) + 1
    log.note(line, "control-character", WARNING, f"invisible control character {match.group(0)!r} removed")
    return _CONTROL.sub("", text)


def front_matter(lines: list[str], log: FindingLog) -> tuple[dict[str, Any], int]:
    """The YAML front matter (``---`` ... ``---``) and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        log.note(1, "bad-front-matter", WARNING, "front matter opened with '---' is never closed")
        return {}, 0
    import yaml

    try:
        loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = 2 + (mark.line if mark is not None else 0)
        log.note(
            line,
            "bad-front-matter",
            WARNING,
            f"front matter is not valid YAML; ignored ({exc.__class__.__name__})",
        )
        return {}, end + 1
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. "date: 2026-02-30"
        log.note(2, "bad-front-matter", WARNING, f"front matter has an impossible value ({exc}); ignored")
        return {}, end + 1
    if not isinstance(loaded, dict):
        log.note(2, "bad-front-matter", WARNING, "front matter is not a mapping of keys; ignored")
        return {}, end + 1
    return {str(k): v for k, v in loaded.items()}, end + 1


class LineScanner:
    """One pass over the lines, sorting each into header, warm-up, sections or boilerplate.

    It only sorts lines; what an item's lines mean is :mod:`.assemble`'s job.
    """

    def __init__(self, log: FindingLog):
        self.log = log
        self.title: tuple[int, str] | None = None
        self.tagline: str | None = None
        self.intro: list[str] = []
        self.intro_line = 0
        self.notes: list[str] = []
        self.warmup: list[tuple[int, str]] = []
        self.sections: list[RawSection] = []
        self.item: RawItem | None = None
        self.mode = "header"  # header | section | footer | back-issues
        self.quote: str | None = None  # the blockquote being continued: intro | note
        self.warmup_open = False

    def walk(self, lines: list[str], start: int) -> None:
        for index in range(start, len(lines)):
            self.line(index + 1, lines[index])

    def line(self, no: int, raw: str) -> None:
        text = raw.rstrip()
        stripped = text.strip()
        heading = _HEADING.match(text) if text.startswith("#") else None
        if heading and len(heading.group(1)) == 2:
            self.section_heading(no, heading.group(2))
            return
        if self.mode == "back-issues":
            return
        if _FOOTER.match(stripped) or (_HR.match(stripped) and self.mode != "header"):
            self.item = None
            self.mode = "footer"
            return
        if heading and self.title is None and not self.sections:
            self.title = (no, heading.group(2).strip())
            return
        if self.mode == "header":
            self.header_line(no, raw, stripped)
        elif self.mode == "footer":
            if _TOP_BULLET.match(text) and "](" in text and self.sections:
                self.mode = "section"
                self.section_line(no, raw, stripped)
        else:
            self.section_line(no, raw, stripped)

    def section_heading(self, no: int, text: str) -> None:
        name = clean_heading(text)
        self.item = None
        if BACK_ISSUES in name:
            self.mode = "back-issues"
            return
        self.mode = "section"
        self.sections.append(RawSection(name=name, line=no))

    def header_line(self, no: int, raw: str, stripped: str) -> None:
        if _HR.match(stripped):
            return
        if not stripped:
            self.quote = None
            self.warmup_open = False
            return
        if stripped.startswith(">"):
            self.blockquote(no, stripped.lstrip(">").strip())
            return
        self.quote = None
        tagline = _TAGLINE.match(stripped)
        if tagline and self.tagline is None and not self.warmup:
            self.tagline = tagline.group(1).strip()
            return
        if _HTML_ONLY.match(stripped):
            return
        bullet = _TOP_BULLET.match(stripped)
        if bullet:
            self.warmup.append((no, bullet.group(1) or ""))
            self.warmup_open = True
            return
        if self.warmup_open:
            if not raw[:1].isspace() and LABEL_LINE.match(stripped):
                self.log.note(
                    no, "warmup-missing-bullet", WARNING, "warm-up entry without '- '; read as its own entry"
                )
                self.warmup.append((no, stripped))
            else:
                last_no, last = self.warmup[-1]
                self.warmup[-1] = (last_no, f"{last} {stripped}".strip())
            return
        self.notes.append(stripped)

    def blockquote(self, no: int, text: str) -> None:
        intro = re.match(r"^导读\s*[：:]?\s*(.*)$", text)
        if intro:
            self.quote = "intro"
            self.intro_line = no
            if intro.group(1):
                self.intro.append(intro.group(1))
        elif self.quote == "intro" and text:
            self.intro.append(text)
        elif text:
            self.quote = "note"
            self.notes.append(text)

    def section_line(self, no: int, raw: str, stripped: str) -> None:
        bullet = _TOP_BULLET.match(raw.rstrip())
        if bullet and not raw[:1].isspace():
            self.item = RawItem(line=no, head=bullet.group(1) or "")
            self.sections[-1].items.append(self.item)
            return
        if self.item is not None:
            self.item.body.append((no, raw))
            return
        if not stripped:
            return
        if stripped.startswith(">"):
            self.notes.append(stripped.lstrip(">").strip())
            return
        if _HTML_ONLY.match(stripped):
            return
        self.log.note(no, "orphan-text", WARNING, "text outside any item is not shown to readers")
        self.notes.append(stripped)


def clean_heading(text: str) -> str:
    """A heading's name without bold, a wrapping link or a trailing colon."""
    name = text.strip().strip("*").strip()
    link = re.fullmatch(r"\[(.*?)\]\(.*\)", name)
    if link:
        name = link.group(1).strip()
    return name.rstrip("：:").strip()
