"""Item and section assembly: the scanner's raw lines become warm-up entries, items and sections.

An item's first line is taken apart (``[label] [title | source](url) [[extra]](url2)``,
repairing unclosed links, empty targets and full-width parentheses); the lines
under it become labelled links (``代码：URL``), fields (``标题：text``) and the
``摘要：`` summary, re-indented into real markdown lists. Every repair is a finding.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from digest.i18n import N_
from digest.newsletter.heads import (
    INLINE_LINK,
    ItemHead,
    join_continuation,
    parse_head,
    quote_item,
    split_source,
)
from digest.newsletter.markup import find_urls, inline_markdown_to_html, is_safe_url, markdown_to_html
from digest.newsletter.model import Field, Item, Link, Prose, Section, Severity
from digest.newsletter.scan import LABEL_LINE, FindingLog, RawItem, RawProse, RawSection, Scan

__all__ = [
    "LINK_LABELS",
    "Assembler",
    "ItemHead",
    "check_issue",
    "checked_url",
    "derive_slug",
    "join_continuation",
    "normalize_summary",
    "parse_head",
    "split_source",
]

FATAL, ERROR, WARNING = Severity.FATAL, Severity.ERROR, Severity.WARNING

# '摘要：', '**摘要**：', '**摘要：**' (closed after the colon); '摘要：**bold** rest' keeps its '**'
_SUMMARY = re.compile(r"^(?:\*\*摘要\s*[：:]\s*\*\*|(?:\*\*)?摘要(?:\*\*)?\s*[：:])\s*(.*)$")
_GLUED_NUMBER = re.compile(r"^(\s*)(\d{1,3})\.(?=[^\s\d.])")  # '2.硬件': a number glued to its text
_NUMBERED = re.compile(r"^\s*(\d{1,3})\.(?:\s|(?=[^\s\d.]))")
_LABEL_IN_TITLE = re.compile(r"^\[([^\[\]\s][^\[\]]{0,30})\](?=[^\s(\[])(.+)$")  # '[ICLR2022]BiBERT'
_STRAY_BOLD = "**"
_LIST_LINE = re.compile(r"^(\d+[.)]|\d+(?:\.\d+)+|[-*+•])\s+(.*)$")
_TAIL_LABEL = re.compile(r"[（(]([^（）()\[\]]{1,12})[）)]")
_TAIL_SEPARATOR = re.compile(r"^(?:[：:|—–]|-(?=\s))\s*")
_LINK_SEPARATORS = re.compile(r"[\s、，,;；]+")
# Labels whose ``label：URL`` lines are links wherever they stand in an item, even after 摘要.
LINK_LABELS = frozenset(
    {"代码", "文章", "链接", "主页", "原文", "演示", "视频", "论文", "项目", "地址", "项目地址",
     "论文链接", "代码地址", "项目主页", "博客", "文档", "原文地址", "GitHub", "Github", "github"}
)  # fmt: skip


def derive_slug(name: str, table: Mapping[str, str]) -> tuple[str, bool]:
    """The section's slug and whether it came from the table.

    An unknown name gets a readable, deterministic ASCII slug of the form a feed and a
    subscriber's ``--sections`` take (``[a-z0-9][a-z0-9-]*``): the name transliterated
    (``业界新闻`` -> ``ye-jie-xin-wen``), else ``section-`` and a short hash of the name.
    """
    if name in table:
        return table[name], True
    from anyascii import anyascii

    runs = re.split(r"([\x00-\x7f]+)", name)  # ASCII as written; other scripts one syllable at a time
    words = " ".join(run if run.isascii() else " ".join(anyascii(c) for c in run) for run in runs)
    ascii_part = re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:60].rstrip("-")
    if ascii_part:
        return ascii_part, False
    return "section-" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], False


class Assembler:
    """Builds the model's items and sections from raw ones, noting every repair in the log."""

    def __init__(
        self,
        log: FindingLog,
        section_slugs: Mapping[str, str],
        references: Mapping[str, str] | None = None,
        breaks: bool = False,
    ):
        self.log = log
        self.section_slugs = section_slugs
        self.references = references or {}
        self.breaks = breaks  # the issue's lines are not wrapped: each line break is kept

    def warmup(self, entries: list[tuple[int, str]]) -> Iterable[tuple[str, str]]:
        for line, text in entries:
            body = text.strip()
            label = LABEL_LINE.match(body)
            if not body or (label and not label.group(2).strip()):
                self.log.note(
                    line,
                    "empty-warmup-entry",
                    ERROR,
                    N_("warm-up entry has no text: %(entry)s"),
                    entry=repr(body or "-"),
                )
                continue
            if "\n" in body:  # an entry of several paragraphs (its quote, its note)
                yield body, markdown_to_html(body, self.references, breaks=self.breaks)
            else:
                yield body, inline_markdown_to_html(body)

    def section(self, raw: RawSection) -> Section:
        slug, known = derive_slug(raw.name, self.section_slugs)
        if not known and (raw.items or not raw.prose):  # a prose section has no feed to configure
            self.log.note(
                raw.line,
                "unknown-section",
                WARNING,
                N_("section '%(section)s' is not in [feeds.sections]; its feed slug is '%(slug)s'"),
                section=raw.name,
                slug=slug,
            )
        items = tuple(self.item(r) for r in raw.items)
        prose = tuple(p for p in (self.prose(r) for r in raw.prose) if p.html)
        if not items and not prose:
            self.log.note(
                raw.line, "empty-section", WARNING, N_("section '%(section)s' has no items"), section=raw.name
            )
        name = raw.name or slug
        return Section(name, slug, items, raw.line, prose, tuple(raw.subsections))

    def prose(self, raw: RawProse) -> Prose:
        """A block shown as written: an essay, a cover picture, a quote, a table."""
        markdown = "\n".join(raw.lines).strip("\n")
        return Prose(
            markdown=markdown,
            html=markdown_to_html(markdown, self.references, breaks=self.breaks),
            line=raw.line,
            subsection=raw.subsection,
        )

    def item(self, raw: RawItem) -> Item:
        head = parse_head(raw.head)
        body = raw.body
        if not raw.head.strip() and (quoted := quote_item(body)) is not None:
            head, body = quoted
        if head.unclosed:
            joined = join_continuation(raw.head, body, self.references)
            if joined is not None:
                head, consumed = joined
                body = body[consumed:]
        inline = INLINE_LINK.search(head.text) if head.url is None and not head.unclosed else None
        if inline:  # 'Foo released [v2.0](url)': the first link is the item's
            head.url, head.text = inline.group(2), INLINE_LINK.sub(r"\1", head.text)
        tag = _TAIL_LABEL.fullmatch(head.tail.strip())
        if tag and head.url:  # '[t](u)（英文）': a note on the link, shown as a label
            head.labels.append(tag.group(1).strip())
            head.tail = ""
        title, source = split_source(head.text)
        url = (head.url or "").strip()
        line = raw.line
        if glued := _LABEL_IN_TITLE.match(title):  # '[[ICLR2022]BiBERT | 源](url)'
            head.labels.append(glued.group(1).strip())
            title = glued.group(2).strip()
        if glued or head.glued_label:
            label = head.labels[-1]
            message = N_("the label '[%(label)s]' is glued to the title; read as a label, then the title")
            self.log.note(line, "glued-label", WARNING, message, label=label)
        url = checked_url(self.log, line, head, title, url)
        links, fields, numbered = self.item_body(body, head, line, raw.code)
        summary = normalize_summary(self.repaired_summary(numbered))
        return Item(
            title=title,
            url=url,
            source=source,
            labels=tuple(head.labels),
            summary=summary,
            summary_html=markdown_to_html(summary, self.references, breaks=self.breaks),
            links=tuple(links),
            fields=tuple(fields),
            line=line,
            subsection=raw.subsection,
        )

    def item_body(
        self, body: list[tuple[int, str]], head: ItemHead, line: int, code: frozenset[int] = frozenset()
    ) -> tuple[list[Link], list[Field], list[str]]:
        links = [link for link in head.extras if self.safe_link(link, line)]
        fields: list[Field] = []
        summary: list[tuple[int, str]] = []
        tail = _TAIL_SEPARATOR.sub("", head.tail.strip())  # '[t](u): text', '[t](u) — text'
        if tail and not re.fullmatch(r"[\s;；。.,，、]*", tail):
            summary.append((line, tail))
        in_summary = bool(summary)
        for no, raw in _fence_indented_code(body, code):
            stripped = raw.strip()
            if no in code:  # code is shown as written, never read for links or fields
                in_summary = True
            elif not in_summary:
                if not stripped:
                    continue
                match = _SUMMARY.match(stripped)
                if match:
                    in_summary = True
                    if match.group(1).strip():
                        summary.append((no, match.group(1).strip()))
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
            summary.append((no, raw.rstrip()))
        return links, fields, summary

    def repaired_summary(self, lines: list[tuple[int, str]]) -> list[str]:
        """The summary's lines with two hand-writing slips repaired, each noted with its line.

        ``2.硬件`` right after ``1. 软件`` (or before ``3. 应用``) is item 2 of that
        list, not a paragraph between two lists; a line whose ``**`` do not pair up
        would show a stray ``**``: the last one is dropped.
        """
        numbers = [_number(text) for _, text in lines]
        out = []
        for index, (no, text) in enumerate(lines):
            glued = _GLUED_NUMBER.match(text)
            if glued:
                value = int(glued.group(2))
                before = next((n for n in reversed(numbers[:index]) if n is not None), None)
                after = next((n for n in numbers[index + 1 :] if n is not None), None)
                if before == value - 1 or after == value + 1:
                    text = f"{text[: glued.end()]} {text[glued.end() :]}"
                    message = N_(
                        "'%(number)s.' has no space before its text; read as item %(number)s of the list"
                    )
                    self.log.note(no, "numbered-no-space", WARNING, message, number=value)
            if text.count(_STRAY_BOLD) % 2 and "`" not in text:
                cut = text.rfind(_STRAY_BOLD)
                text = text[:cut] + text[cut + 2 :]
                self.log.note(no, "stray-bold", WARNING, N_("a '**' on this line is never closed; dropped"))
            out.append(text)
        return out

    def link_line_after_summary(self, text: str) -> list[Link] | None:
        """``代码：URL`` after 摘要 is still the item's link, not prose (only for known link labels)."""
        match = LABEL_LINE.match(text)
        if not match or match.group(1) not in LINK_LABELS:
            return None
        labelled = self.labelled_line(text)
        return labelled[0] if labelled and labelled[0] and labelled[1] is None else None

    def labelled_line(self, text: str) -> tuple[list[Link], Field | None] | None:
        """``代码：URL`` lines become links, ``标题：text`` lines fields; anything else is prose."""
        match = LABEL_LINE.match(text)
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
        self.log.note(
            line,
            "unsafe-url",
            ERROR,
            N_("extra link '%(label)s' has an empty or unsafe URL"),
            label=link.label,
        )
        return False


def checked_url(log: FindingLog, line: int, head: ItemHead, title: str, url: str) -> str:
    """The item's URL once its link is checked (empty when unsafe); each oddity is noted."""
    if head.unclosed:
        log.note(
            line,
            "unclosed-link",
            ERROR,
            N_("the link '[%(text)s' is never closed with '](url)'"),
            text=head.text,
        )
    elif head.url is None:
        log.note(line, "no-link", WARNING, N_("item '%(title)s' has no link"), title=title)
    elif not url:
        found = [u for _, _, u in find_urls(title)]
        if found and found[0] == title.strip():
            url = found[0]
            log.note(
                line,
                "url-from-title",
                WARNING,
                N_("empty link target: using the link text %(url)s as the URL"),
                url=url,
            )
        else:
            log.note(
                line,
                "empty-link-target",
                ERROR,
                N_("item '%(title)s' has an empty link target '()'"),
                title=title or "-",
            )
    if head.fullwidth_paren:
        log.note(line, "fullwidth-paren", WARNING, N_("a link ends with a full-width '）'; read as ')'"))
    if not title and url:
        message = N_("item has no title text between '[' and ']'; its link is shown instead")
        log.note(line, "empty-title", WARNING, message)
    elif not title:
        log.note(line, "empty-title", WARNING, N_("item has no title text and no link"))
    if url and not is_safe_url(url):
        log.note(
            line, "unsafe-url", ERROR, N_("link URL %(url)s is not http(s); dropped"), url=repr(url[:60])
        )
        url = ""
    return url


def check_issue(log: FindingLog, scan: Scan, sections: tuple[Section, ...]) -> None:
    """Whole-issue checks: no items at all, an empty intro, duplicate links, missing summaries."""
    items = [item for section in sections for item in section.items]
    prose = scan.preamble or scan.warmup or scan.intro or any(section.prose for section in sections)
    if not items and not prose and not log.has("empty-file"):
        log.note(0, "no-items", FATAL, N_("nothing to send: no items and no text under the title"))
    if scan.title and not scan.intro and scan.intro_line:
        log.note(scan.intro_line, "empty-intro", WARNING, N_("the intro is empty"))
    seen: dict[str, int] = {}
    for item in items:
        if not item.url:
            continue
        if item.url in seen:
            log.note(
                item.line,
                "duplicate-url",
                WARNING,
                N_("%(url)s is already linked at line %(line)s"),
                url=item.url,
                line=seen[item.url],
            )
        else:
            seen[item.url] = item.line
    summarised = sum(1 for item in items if item.summary or item.fields)
    for item in items if summarised * 2 >= len(items) else ():  # only where items carry summaries
        if not item.summary and not item.fields:
            log.note(
                item.line,
                "no-summary",
                WARNING,
                N_("item '%(title)s' has no summary text"),
                title=item.title[:40],
            )


def _fence_indented_code(body: list[tuple[int, str]], code: frozenset[int]) -> list[tuple[int, str]]:
    """An indented code block in an item's body is fenced, so it stays code once re-indented.

    Indented list lines (``    1. point``) are the editor's sub-points, not code: the
    summary's list repair handles those.
    """
    if not code:
        return body
    out: list[tuple[int, str]] = []
    run: list[tuple[int, str]] = []

    def flush() -> None:
        texts = [text for _, text in run if text.strip()]
        fenced = bool(texts) and texts[0].lstrip().startswith(("```", "~~~"))
        if texts and not fenced and not all(_LIST_LINE.match(text.strip()) for text in texts):
            first, last = run[0][0], run[-1][0]
            run[:] = [(first, "```"), *((no, text[4:]) for no, text in run), (last, "```")]
        out.extend(run)
        run.clear()

    for no, text in body:
        if no in code:
            run.append((no, text))
            continue
        flush()
        out.append((no, text))
    flush()
    return out


def _number(text: str) -> int | None:
    """The number of a numbered-list line (``2. x`` or ``2.x``), or None for any other line."""
    match = _NUMBERED.match(text)
    return int(match.group(1)) if match else None


def normalize_summary(lines: list[str]) -> str:
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
        base = levels.index(run[0][0])  # the run's first line starts the list, however indented
        if out and out[-1]:
            out.append("")
        for indent, marker, content in run:
            depth = max(0, levels.index(indent) - base)
            if re.fullmatch(r"\d+[.)]", marker):
                bullet = marker
            elif marker[0].isdigit():
                bullet, content = "-", f"{marker} {content}"
            else:
                bullet = "-"
            out.append(f"{'    ' * depth}{bullet} {content}")
        out.append("")
        run.clear()

    fence = ""
    for raw in lines:
        stripped = raw.strip()
        if fence or stripped.startswith(("```", "~~~")):
            flush()
            out.append(raw.rstrip())
            if not fence:
                fence = stripped[:3]
            elif stripped.startswith(fence):
                fence = ""
            continue
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
