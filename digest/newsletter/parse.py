"""Read one issue file into an :class:`~digest.newsletter.model.Issue`.

The format is the newsletter's own, written by hand and often mid-edit::

    ---                                   (front matter: optional)
    # 嵌入式AI简报 (2022-07-01)：headline
    **关注模型压缩、低比特量化、移动端推理加速优化、部署**
    > 导读：intro
    - warm-up news bullets
    ## 论文
    - [label] [title | source](url) [[extra]](url2)
    代码：https://...                       (labelled links)
    摘要：summary, continuation lines, nested lists
    ## [往期回顾](...)                      (back issues, QR code, footer: dropped)

Parsing never raises on odd content: every oddity becomes a lint
:class:`~digest.newsletter.model.Finding` with a line number, so the editor sees it and no
item is silently dropped. Only a file with no date anywhere cannot be an issue;
:func:`parse_issue` raises :class:`UndatedIssue` for it, carrying its findings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.config import DEFAULT_SECTION_SLUGS, Config
from digest.errors import ParseError
from digest.newsletter.markup import (
    C0_CONTROLS,
    find_urls,
    inline_markdown_to_html,
    is_safe_url,
    markdown_to_html,
)
from digest.newsletter.model import Field, Finding, Issue, Item, Link, Section, Severity

__all__ = [
    "ParseOptions",
    "UndatedIssue",
    "derive_slug",
    "parse_issue",
    "read_issue",
    "read_source",
]

FATAL, ERROR, WARNING = Severity.FATAL, Severity.ERROR, Severity.WARNING

BACK_ISSUES = "往期回顾"
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_HEADING = re.compile(r"^(#+)\s*(.*?)\s*#*\s*$")
_HR = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
_TOP_BULLET = re.compile(r"^[-*+](?:\s+(.*))?$")
_ANY_BULLET = re.compile(r"^\s*[-*+]\s+")
_TAGLINE = re.compile(r"^\*\*(.+?)\*\*$")
_FOOTER = re.compile(
    r"^(?:(?:editor|project|wechat id|license)\s*[:：]|!\[wechat_qrcode\]|<a rel=\"license\")",
    re.I,
)
_HTML_ONLY = re.compile(r"^<(font|img|center|div|span|br)\b.*$", re.I)
_SUMMARY = re.compile(r"^(?:\*\*)?摘要(?:\*\*)?\s*[：:]\s*(?:\*\*)?\s*(.*)$")
_LABEL_LINE = re.compile(r"^([^\s：:\[\]()（）<>*#/]{1,12}?)\s*[：:]\s*(.*)$")
_LIST_LINE = re.compile(r"^(\d+[.)]|\d+(?:\.\d+)+|[-*+•])\s+(.*)$")
_DATE_PAREN = re.compile(r"[(（]\s*([^()（）]{6,40}?)\s*[)）]")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_PLACEHOLDER = re.compile(r"<[^<>\s]{1,20}>|\bTODO\b|\bTBD\b|\bXXX\b|待定|待补充")
_SOURCE_SPLIT = re.compile(r"\s*(?:\s\||\|\s|\s丨\s)\s*")
_LINK_SEPARATORS = re.compile(r"[\s、，,;；]+")
_CONTROL = re.compile(f"[{C0_CONTROLS}\x7f\ufffe\uffff]")  # what XML forbids, and DEL
# Labels whose ``label：URL`` lines are links wherever they stand in an item, even after 摘要.
LINK_LABELS = frozenset(
    {"代码", "文章", "链接", "主页", "原文", "演示", "视频", "论文", "项目", "地址", "项目地址",
     "论文链接", "代码地址", "项目主页", "博客", "文档", "原文地址", "GitHub", "Github", "github"}
)  # fmt: skip


@dataclass(frozen=True)
class ParseOptions:
    """What parsing needs from the config: the site's timezone and the section slug table."""

    timezone: dt.tzinfo = dt.UTC
    section_slugs: Mapping[str, str] = field(default_factory=lambda: DEFAULT_SECTION_SLUGS)

    @classmethod
    def from_config(cls, config: Config) -> ParseOptions:
        return cls(timezone=config.site.timezone, section_slugs=config.feeds.sections)


class UndatedIssue(ParseError):
    """The file has no date in its title, front matter or name: it cannot be an issue yet."""

    def __init__(self, path: Path, findings: tuple[Finding, ...]):
        self.findings = findings
        first = next(f for f in findings if f.code == "no-date")
        super().__init__(first.message, path=path, line=first.line or None)


def read_source(path: Path, *, max_bytes: int = 2_000_000) -> bytes:
    """The bytes of an issue file; anything else is a :class:`ParseError` naming the file, at once.

    Opened without blocking, so a FIFO or a device is refused rather than waited
    on; a file over ``max_bytes`` (the largest real issue is 30 KB) is refused
    before it is read.
    """
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise ParseError("is a directory, not an issue file", path=path) from None
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=path) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ParseError("is a directory, not an issue file", path=path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
            raise ParseError(f"is {kind}, not an issue file", path=path)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = b"" if info.st_size > max_bytes else handle.read(max_bytes + 1)
    except OSError as exc:
        raise ParseError(f"cannot read: {exc.strerror or exc}", path=path) from None
    finally:
        os.close(fd)
    size = max(info.st_size, len(data))  # it may also have grown while being read
    if size > max_bytes:
        raise ParseError(
            f"is {size / 1e6:.1f} MB; an issue file may be at most {max_bytes / 1e6:.0f} MB "
            "(is this really an issue?)",
            path=path,
        )
    return data


def read_issue(path: Path, options: ParseOptions | None = None) -> Issue:
    """Read and parse one file."""
    return parse_issue(read_source(path), path, options or ParseOptions())


def parse_issue(data: bytes | str, path: Path, options: ParseOptions | None = None) -> Issue:
    """Parse the bytes (or text) of an issue file. Pure: no I/O."""
    return _Parser(path, options or ParseOptions()).parse(data)


def derive_slug(name: str, table: Mapping[str, str]) -> tuple[str, bool]:
    """The section's slug and whether it came from the table.

    An unknown name gets a deterministic ASCII slug: its ASCII letters and digits
    when it has some, else ``section-`` and a short hash of the name.
    """
    if name in table:
        return table[name], True
    ascii_part = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if ascii_part:
        return ascii_part, False
    return "section-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], False


@dataclass
class _RawItem:
    line: int
    head: str
    body: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _RawSection:
    name: str
    line: int
    items: list[_RawItem] = field(default_factory=list)


@dataclass
class _Head:
    """The first line of an item, taken apart."""

    labels: list[str] = field(default_factory=list)
    text: str = ""
    url: str | None = None  # None: the line has no link at all
    extras: list[Link] = field(default_factory=list)
    tail: str = ""
    unclosed: bool = False
    fullwidth_paren: bool = False


class _Parser:
    def __init__(self, path: Path, options: ParseOptions):
        self.path = path
        self.options = options
        self.findings: list[Finding] = []
        self.empty = False

    def note(self, line: int, code: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(line, code, severity, message))

    # -- the whole file ---------------------------------------------------------------

    def parse(self, data: bytes | str) -> Issue:
        text = self.decode(data) if isinstance(data, bytes) else data.lstrip("\ufeff")
        text = self.without_control_characters(text)
        lines = _LINE_SPLIT.split(text)
        self.empty = not text.strip()
        if self.empty:
            self.note(0, "empty-file", FATAL, "the file is empty: not an issue yet")
        front, body_start = self.front_matter(lines)
        walker = _Walker(self)
        walker.walk(lines, body_start)
        title_line, title_text = walker.title or (0, "")
        title, headline, h1_date = self.title(title_line, title_text, front)
        date, published = self.date(h1_date, title_line, front)
        sections = tuple(self.section(raw) for raw in walker.sections)
        warmup = tuple(self.warmup(walker.warmup))
        intro = " ".join(walker.intro).strip()
        self.check_issue(walker, sections, intro, date)
        findings = tuple(sorted(self.findings, key=lambda f: (f.line, f.severity.rank, f.code)))
        if date is None or published is None:
            raise UndatedIssue(self.path, findings)
        draft = front.get("draft") is True or front.get("published") is False
        return Issue(
            path=self.path,
            stem=self.path.stem,
            date=date,
            published=published,
            title=title,
            headline=headline,
            tagline=walker.tagline or "",
            intro=intro,
            intro_html=inline_markdown_to_html(intro),
            warmup=tuple(w for w, _ in warmup),
            warmup_html=tuple(h for _, h in warmup),
            sections=sections,
            findings=findings,
            draft=draft,
            notes=tuple(walker.notes),
        )

    def decode(self, data: bytes) -> str:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.note(
                line,
                "not-utf8",
                ERROR,
                f"bytes that are not UTF-8 (shown as \ufffd); save the file as UTF-8 "
                f"(first bad byte at line {line})",
            )
            return data.decode("utf-8", errors="replace")

    def without_control_characters(self, text: str) -> str:
        """Characters no reader can see and XML forbids (pasted from other tools) are removed."""
        match = _CONTROL.search(text)
        if match is None:
            return text
        line = text.count("\n", 0, match.start()) + 1
        self.note(
            line, "control-character", WARNING, f"invisible control character {match.group(0)!r} removed"
        )
        return _CONTROL.sub("", text)

    def front_matter(self, lines: list[str]) -> tuple[dict[str, Any], int]:
        if not lines or lines[0].strip() != "---":
            return {}, 0
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                break
        else:
            self.note(1, "bad-front-matter", WARNING, "front matter opened with '---' is never closed")
            return {}, 0
        import yaml

        try:
            loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = 2 + (mark.line if mark is not None else 0)
            self.note(
                line,
                "bad-front-matter",
                WARNING,
                f"front matter is not valid YAML; ignored ({exc.__class__.__name__})",
            )
            return {}, end + 1
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. "date: 2026-02-30"
            self.note(
                2, "bad-front-matter", WARNING, f"front matter has an impossible value ({exc}); ignored"
            )
            return {}, end + 1
        if not isinstance(loaded, dict):
            self.note(2, "bad-front-matter", WARNING, "front matter is not a mapping of keys; ignored")
            return {}, end + 1
        return {str(k): v for k, v in loaded.items()}, end + 1

    # -- title and date -----------------------------------------------------------------

    def title(self, line: int, text: str, front: Mapping[str, Any]) -> tuple[str, str, dt.date | None]:
        if not text:
            fallback = str(front.get("title") or "").strip()
            if not fallback and not self.empty:
                self.note(
                    line,
                    "no-title",
                    ERROR,
                    "no '# title' line: add one such as '# 简报 (2024-01-31)：headline'",
                )
            return fallback, "", None
        match = _DATE_PAREN.search(text)
        h1_date = _parse_date(match.group(1)) if match else None
        if match and h1_date is not None:
            title, rest = text[: match.end()].strip(), text[match.end() :]
        else:
            colon = re.search(r"[：:]", text)
            title, rest = (text[: colon.start()].strip(), text[colon.end() :]) if colon else (text, "")
        headline = rest.strip().lstrip("：:").strip()
        if _PLACEHOLDER.search(text):
            self.note(line, "placeholder-title", FATAL, f"the title still has placeholder text: {text!r}")
        elif match and not headline and rest.strip().startswith(("：", ":")):
            self.note(
                line, "empty-headline", WARNING, "the title ends with a colon but has no headline after it"
            )
        return title, headline, h1_date

    def date(
        self, h1_date: dt.date | None, title_line: int, front: Mapping[str, Any]
    ) -> tuple[dt.date | None, dt.datetime | None]:
        front_value = front.get("date")
        front_dt = _front_datetime(front_value, self.options.timezone)
        if front_value is not None and front_dt is None:
            self.note(2, "bad-date", WARNING, f"front matter date {front_value!r} is not a date; ignored")
        name_match = _ISO_DATE.match(self.path.name)
        name_date = _parse_date(name_match.group(0)) if name_match else None
        candidates = [
            ("the title", h1_date),
            ("the front matter", front_dt.date() if front_dt else None),
            ("the file name", name_date),
        ]
        known = [(where, value) for where, value in candidates if value is not None]
        if not known:
            self.note(
                title_line,
                "no-date",
                FATAL,
                "no date in the title '(YYYY-MM-DD)', the front matter 'date:' or the file name",
            )
            return None, None
        chosen_where, chosen = known[0]
        for where, value in known[1:]:
            if value != chosen:
                self.note(
                    title_line or 1,
                    "date-mismatch",
                    WARNING,
                    f"{chosen_where} says {chosen}, but {where} says {value}; using {chosen}",
                )
        if front_dt is not None and front_dt.date() == chosen:
            return chosen, front_dt
        midnight = dt.datetime.combine(chosen, dt.time(0, 0), tzinfo=self.options.timezone)
        return chosen, midnight

    # -- warm-up, sections and items -----------------------------------------------------

    def warmup(self, entries: list[tuple[int, str]]) -> Iterable[tuple[str, str]]:
        for line, text in entries:
            body = text.strip()
            label = _LABEL_LINE.match(body)
            if not body or (label and not label.group(2).strip()):
                self.note(line, "empty-warmup-entry", ERROR, f"warm-up entry has no text: {body or '-'!r}")
                continue
            yield body, inline_markdown_to_html(body)

    def section(self, raw: _RawSection) -> Section:
        slug, known = derive_slug(raw.name, self.options.section_slugs)
        if not known:
            self.note(
                raw.line,
                "unknown-section",
                WARNING,
                f"section '{raw.name}' is not in [feeds.sections]; its feed slug is '{slug}'",
            )
        items = tuple(self.item(r) for r in raw.items)
        if not items:
            self.note(raw.line, "empty-section", WARNING, f"section '{raw.name}' has no items")
        return Section(name=raw.name, slug=slug, items=items, line=raw.line)

    def item(self, raw: _RawItem) -> Item:
        head = _parse_head(raw.head)
        body = raw.body
        if head.unclosed:
            joined = _join_continuation(raw.head, body)
            if joined is not None:
                head, consumed = joined
                body = body[consumed:]
        title, source = _split_source(head.text)
        url = (head.url or "").strip()
        line = raw.line
        if head.unclosed:
            self.note(line, "unclosed-link", ERROR, f"the link '[{head.text}' is never closed with '](url)'")
        elif head.url is None:
            self.note(line, "no-link", WARNING, f"item '{title}' has no link")
        elif not url:
            found = [u for _, _, u in find_urls(title)]
            if found and found[0] == title.strip():
                url = found[0]
                self.note(
                    line,
                    "url-from-title",
                    WARNING,
                    f"empty link target: using the link text {url} as the URL",
                )
            else:
                self.note(
                    line,
                    "empty-link-target",
                    ERROR,
                    f"item '{title or '(no title)'}' has an empty link target '()'",
                )
        if head.fullwidth_paren:
            self.note(line, "fullwidth-paren", WARNING, "a link ends with a full-width '）'; read as ')'")
        if not title:
            self.note(line, "empty-title", ERROR, "item has no title text between '[' and ']'")
        if url and not is_safe_url(url):
            self.note(line, "unsafe-url", ERROR, f"link URL {url[:60]!r} is not http(s); dropped")
            url = ""
        links, fields, summary_lines = self.item_body(body, head, line)
        summary = _normalize_summary(summary_lines)
        return Item(
            title=title,
            url=url,
            source=source,
            labels=tuple(head.labels),
            summary=summary,
            summary_html=markdown_to_html(summary),
            links=tuple(links),
            fields=tuple(fields),
            line=line,
        )

    def item_body(
        self, body: list[tuple[int, str]], head: _Head, line: int
    ) -> tuple[list[Link], list[Field], list[str]]:
        links = [link for link in head.extras if self.safe_link(link, line)]
        fields: list[Field] = []
        summary: list[str] = []
        tail = head.tail.strip()
        if tail and not re.fullmatch(r"[\s;；。.,，、]*", tail):
            summary.append(tail)
        in_summary = bool(summary)
        for _, raw in body:
            stripped = raw.strip()
            if not in_summary:
                if not stripped:
                    continue
                match = _SUMMARY.match(stripped)
                if match:
                    in_summary = True
                    if match.group(1).strip():
                        summary.append(match.group(1).strip())
                    continue
                labelled = self.labelled_line(stripped)
                if labelled is not None:
                    new_links, new_field = labelled
                    links.extend(new_links)
                    fields.extend([new_field] if new_field else [])
                    continue
                in_summary = True
            elif (after := self.link_line_after_summary(stripped)) is not None:
                links.extend(after)
                continue
            summary.append(raw.rstrip())
        return links, fields, summary

    def link_line_after_summary(self, text: str) -> list[Link] | None:
        """``代码：URL`` after 摘要 is still the item's link, not prose (only for known link labels)."""
        match = _LABEL_LINE.match(text)
        if not match or match.group(1) not in LINK_LABELS:
            return None
        labelled = self.labelled_line(text)
        return labelled[0] if labelled and labelled[0] and labelled[1] is None else None

    def labelled_line(self, text: str) -> tuple[list[Link], Field | None] | None:
        """``代码：URL`` lines become links, ``标题：text`` lines fields; anything else is prose."""
        match = _LABEL_LINE.match(text)
        if not match or match.group(1).lower() in ("http", "https"):
            return None
        label, value = match.group(1), match.group(2).strip()
        urls = [url for _, _, url in find_urls(value)]
        leftover = value
        for url in urls:
            leftover = leftover.replace(url, " ")
        if urls and not _LINK_SEPARATORS.sub("", leftover):
            return [Link(label, url) for url in urls], None
        if value.startswith("www.") and " " not in value:
            return [Link(label, "http://" + value)], None
        if not urls and 0 < len(value) <= 200:
            return [], Field(label, value)
        return None

    def safe_link(self, link: Link, line: int) -> bool:
        if link.url and is_safe_url(link.url):
            return True
        self.note(line, "unsafe-url", ERROR, f"extra link '{link.label}' has an empty or unsafe URL")
        return False

    # -- whole-issue checks --------------------------------------------------------------

    def check_issue(
        self, walker: _Walker, sections: tuple[Section, ...], intro: str, date: dt.date | None
    ) -> None:
        items = [item for section in sections for item in section.items]
        if not items and not any(f.code == "empty-file" for f in self.findings):
            self.note(0, "no-items", FATAL, "no items under any '## ' section: not an issue yet")
        if walker.title and not intro and walker.intro_line:
            self.note(walker.intro_line, "empty-intro", WARNING, "the 导读 intro is empty")
        seen: dict[str, int] = {}
        for item in items:
            if not item.url:
                continue
            if item.url in seen:
                self.note(
                    item.line,
                    "duplicate-url",
                    WARNING,
                    f"{item.url} is already linked at line {seen[item.url]}",
                )
            else:
                seen[item.url] = item.line
        for item in items:
            if not item.summary and not item.fields:
                self.note(item.line, "no-summary", WARNING, f"item '{item.title[:40]}' has no 摘要 summary")


class _Walker:
    """One pass over the lines, sorting each into header, warm-up, sections or boilerplate."""

    def __init__(self, parser: _Parser):
        self.parser = parser
        self.title: tuple[int, str] | None = None
        self.tagline: str | None = None
        self.intro: list[str] = []
        self.intro_line = 0
        self.notes: list[str] = []
        self.warmup: list[tuple[int, str]] = []
        self.sections: list[_RawSection] = []
        self.item: _RawItem | None = None
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
        name = _clean_heading(text)
        self.item = None
        if BACK_ISSUES in name:
            self.mode = "back-issues"
            return
        self.mode = "section"
        self.sections.append(_RawSection(name=name, line=no))

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
            if not raw[:1].isspace() and _LABEL_LINE.match(stripped):
                self.parser.note(
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
            self.item = _RawItem(line=no, head=bullet.group(1) or "")
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
        self.parser.note(no, "orphan-text", WARNING, "text outside any item is not shown to readers")
        self.notes.append(stripped)


# -- pieces of an item -----------------------------------------------------------------


def _parse_head(text: str) -> _Head:
    """Take apart ``[label] [title | source](url) [[extra]](url2) tail``."""
    head = _Head()
    pos = _skip_spaces(text, 0)
    while pos < len(text) and text[pos] == "[":
        close = _match_bracket(text, pos)
        if close is None:
            head.unclosed = True
            head.text = text[pos + 1 :].strip()
            return head
        after = _skip_spaces(text, close + 1)
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
        close = _match_bracket(text, pos)
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


def _match_bracket(text: str, start: int) -> int | None:
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "\\":
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
    return None


def _destination(text: str, start: int) -> tuple[str, int | None, bool]:
    """The link target starting at ``start`` (just after '('): (url, end, closed-by-'）')."""
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
                return text[start : url_end or index].strip(), index + 1, False
            depth -= 1
    fullwidth = text.find("）", start)
    if fullwidth != -1:
        return text[start:fullwidth].strip(), fullwidth + 1, True
    return text[start:].strip(), None, False


def _join_continuation(head_text: str, body: list[tuple[int, str]]) -> tuple[_Head, int] | None:
    """An unclosed ``[title`` may continue on the next lines; join up to three of them."""
    joined = head_text
    for count, (_, raw) in enumerate(body[:3], start=1):
        if not raw.strip() or _ANY_BULLET.match(raw) or raw.startswith("#"):
            return None
        joined = f"{joined.rstrip()} {raw.strip()}"
        head = _parse_head(joined)
        if not head.unclosed:
            return head, count
    return None


def _split_source(text: str) -> tuple[str, str]:
    """``title | source``: the source is after the last separator bar."""
    parts = _SOURCE_SPLIT.split(text)
    if len(parts) >= 2 and parts[-1].strip():
        title = text[: text.rfind(parts[-1])].rstrip().rstrip("|丨").strip()
        return title, parts[-1].strip()
    return text.rstrip("|丨 ").strip(), ""


def _normalize_summary(lines: list[str]) -> str:
    """Markdown for a summary: nested lists re-indented, list blocks set apart by blank lines.

    Editors indent sub-points by eye (``    1.``, ``        2.1``); in CommonMark
    those would be lazy continuation lines or code blocks. Each run of list lines
    becomes a proper nested list; ``2.1``-style numbers become bullets that keep
    their number as text.
    """
    out: list[str] = []
    run: list[tuple[int, str, str]] = []

    def flush() -> None:
        if not run:
            return
        levels = sorted({indent for indent, _, _ in run})
        if out and out[-1]:
            out.append("")
        for indent, marker, content in run:
            depth = levels.index(indent)
            if re.fullmatch(r"\d+[.)]", marker):
                bullet = marker
            elif marker[0].isdigit():
                bullet, content = "-", f"{marker} {content}"
            else:
                bullet = "-"
            out.append(f"{'    ' * depth}{bullet} {content}")
        out.append("")
        run.clear()

    for raw in lines:
        stripped = raw.strip()
        match = _LIST_LINE.match(stripped)
        if match and stripped:
            indent = len(raw) - len(raw.lstrip())
            run.append((indent, match.group(1), match.group(2).strip()))
            continue
        flush()
        if not stripped:
            if out and out[-1]:
                out.append("")
            continue
        out.append(stripped)
    flush()
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _clean_heading(text: str) -> str:
    name = text.strip().strip("*").strip()
    link = re.fullmatch(r"\[(.*?)\]\(.*\)", name)
    if link:
        name = link.group(1).strip()
    return name.rstrip("：:").strip()


def _parse_date(text: str) -> dt.date | None:
    """A date from the title or file name: ISO first, then the spellings dateutil knows."""
    text = text.strip()
    iso = re.fullmatch(r"(\d{4})[-./年](\d{1,2})[-./月](\d{1,2})日?", text)
    try:
        if iso:
            return dt.date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    except ValueError:
        return None
    if not re.search(r"\d{4}", text):
        return None
    from dateutil import parser as dateparser

    try:
        return dateparser.parse(text, default=dt.datetime(1900, 1, 1)).date()
    except (ValueError, OverflowError):
        return None


def _front_datetime(value: object, tz: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0, 0), tzinfo=tz)
    if isinstance(value, str) and re.search(r"\d{4}", value):
        from dateutil import parser as dateparser

        try:
            parsed = dateparser.parse(value)
        except (ValueError, OverflowError):
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    return None
