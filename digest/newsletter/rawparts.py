"""The scanner's raw parts of an issue, as written, and the log of findings they share.

The scanner (:mod:`.scan`) fills them in one pass; the assembly (:mod:`.assemble`)
builds the model from them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from digest.newsletter.model import Finding, Severity

__all__ = ["BACK_ISSUES", "LABEL_LINE", "FindingLog", "RawItem", "RawProse", "RawSection", "SectionRules"]

BACK_ISSUES = "往期回顾"  # a back-issues list: left out of the mail
LABEL_LINE = re.compile(r"^([^\s：:\[\]()（）<>*#/]{1,12}?)\s*[：:](?!//)\s*(.*)$")  # not 'https://'


class FindingLog:
    """The findings noted while reading one file, shared by the scanner and the assembly."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def note(self, line: int, code: str, severity: Severity, message: str, /, **params: object) -> None:
        """Note a finding: ``message`` a catalog message (``N_``), ``params`` its placeholders' values."""
        self.findings.append(Finding(line, code, severity, message, tuple(params.items())))

    def has(self, code: str) -> bool:
        return any(f.code == code for f in self.findings)

    def sorted(self) -> tuple[Finding, ...]:
        """By line, then severity, then code: the order lint and previews show."""
        return tuple(sorted(self.findings, key=lambda f: (f.line, f.severity.rank, f.code)))


@dataclass(frozen=True)
class SectionRules:
    """The editor's word on headings (``[newsletter]``), by lowercased name."""

    items: Collection[str] = ()
    prose: Collection[str] = ()
    skip: Collection[str] = ()

    def kind(self, name: str) -> str:
        """``skip``, ``prose`` or ``items`` (read for items; without any it is prose)."""
        key = name.casefold()
        if key in self.skip or BACK_ISSUES in name:
            return "skip"
        if key in self.prose or (self.items and key not in self.items):
            return "prose"
        return "items"


@dataclass
class RawItem:
    """An item's first line and the lines under it, as written (``code``: line numbers in code)."""

    line: int
    head: str
    body: list[tuple[int, str]] = field(default_factory=list)
    subsection: str = ""
    code: frozenset[int] = frozenset()


@dataclass
class RawProse:
    """Blocks that are not items, as written, with the line they start at."""

    line: int
    lines: list[str] = field(default_factory=list)
    subsection: str = ""


@dataclass
class RawSection:
    """A section heading, the raw items and prose under it, and its subsections."""

    name: str
    line: int
    items: list[RawItem] = field(default_factory=list)
    prose: list[RawProse] = field(default_factory=list)
    subsections: list[str] = field(default_factory=list)
    kind: str = "items"
