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
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.config import DEFAULT_SECTION_SLUGS, Config, SiteConfig
from digest.errors import ParseError
from digest.i18n import N_, Sentence
from digest.newsletter.assemble import Assembler, check_issue, derive_slug
from digest.newsletter.dates import find_date, issue_date, issue_folder_name
from digest.newsletter.discover import DRAFT_FOLDERS
from digest.newsletter.markup import inline_markdown_to_html
from digest.newsletter.meta import issue_number
from digest.newsletter.model import Finding, Issue, Prose, Severity
from digest.newsletter.scan import FindingLog, Scan, SectionRules, scan_text
from digest.newsletter.wallclock import wall_clock

__all__ = [
    "ParseOptions",
    "UndatedIssue",
    "derive_slug",
    "parse_issue",
    "path_key",
    "read_issue",
    "read_source",
]

FATAL, ERROR, WARNING = Severity.FATAL, Severity.ERROR, Severity.WARNING

_DATE_PAREN = re.compile(r"[(（]\s*([^()（）]{6,40}?)\s*[)）]")
_DATE_IN_TEXT = re.compile(r"(?<!\d)(\d{4}[-./年]\d{1,2}[-./月]\d{1,2})日?(?!\d)")
_INDEX_STEMS = frozenset({"index", "_index", "readme"})
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_PLACEHOLDER = re.compile(r"<[^<>\s]{1,20}>|\bTODO\b|\bTBD\b|\bXXX\b|待定|待补充")


def path_key(path: Path) -> str:
    """How a file is known in :attr:`ParseOptions.first_commits`: its absolute, normalised path."""
    return os.path.normpath(path.absolute())


@dataclass(frozen=True)
class ParseOptions:
    """What parsing needs from the config: timezone, section slugs, the ``[newsletter]`` rules.

    ``first_commits`` (absolute path -> when the file was first committed) is read
    once per catalog when ``date_from = "git"``; a file missing from it is not committed.
    """

    timezone: dt.tzinfo = dt.UTC
    section_slugs: Mapping[str, str] = field(default_factory=lambda: DEFAULT_SECTION_SLUGS)
    rules: SectionRules = field(default_factory=SectionRules)
    date_from: str = "content"
    first_commits: Mapping[str, dt.datetime] = field(default_factory=dict)
    language: str = SiteConfig.language  # the words digest adds to the issue's HTML (an image's label)

    @classmethod
    def from_config(
        cls, config: Config, first_commits: Mapping[str, dt.datetime] | None = None
    ) -> ParseOptions:
        news = config.newsletter
        rules = SectionRules(
            items=frozenset(n.casefold() for n in news.item_sections),
            prose=frozenset(n.casefold() for n in news.prose_sections),
            skip=frozenset(n.casefold() for n in news.skip_sections),
        )
        return cls(
            timezone=config.site.timezone,
            section_slugs=config.feeds.sections,
            rules=rules,
            date_from=news.date_from,
            first_commits={} if first_commits is None else first_commits,
            language=config.site.language,
        )


class UndatedIssue(ParseError):
    """The file has no date in its title, front matter or name: it cannot be an issue yet."""

    def __init__(self, path: Path, findings: tuple[Finding, ...]):
        self.findings = findings
        first = next(f for f in findings if f.code == "no-date")
        super().__init__(first.message, path=path, line=first.line or None)


_DIRECTORY = N_("is a directory, not an issue file")
_DEVICE = N_("is a device or socket, not an issue file")
_CANNOT_READ = N_("cannot read: %(error)s")


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
        raise ParseError(Sentence(_DIRECTORY), path=path) from None
    except OSError as exc:
        raise ParseError(Sentence(_CANNOT_READ, error=exc.strerror or str(exc)), path=path) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ParseError(Sentence(_DIRECTORY), path=path)
        if not stat.S_ISREG(info.st_mode):
            kind = N_("is a FIFO, not an issue file") if stat.S_ISFIFO(info.st_mode) else _DEVICE
            raise ParseError(Sentence(kind), path=path)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = b"" if info.st_size > max_bytes else handle.read(max_bytes + 1)
    except OSError as exc:
        raise ParseError(Sentence(_CANNOT_READ, error=exc.strerror or str(exc)), path=path) from None
    finally:
        os.close(fd)
    size = max(info.st_size, len(data))  # it may also have grown while being read
    if size > max_bytes:
        message = N_("is %(size)s MB; an issue file may be at most %(limit)s MB (is this really an issue?)")
        raise ParseError(
            Sentence(message, size=f"{size / 1e6:.1f}", limit=f"{max_bytes / 1e6:.0f}"), path=path
        )
    return data


def read_issue(path: Path, options: ParseOptions | None = None) -> Issue:
    """Read and parse one file."""
    return parse_issue(read_source(path), path, options or ParseOptions())


def parse_issue(data: bytes | str, path: Path, options: ParseOptions | None = None) -> Issue:
    """Parse the bytes (or text) of an issue file. Pure: no I/O.

    The scanner sorts the lines (:mod:`.scan`), the assembly builds items and
    sections from them (:mod:`.assemble`); title and date are read here.
    """
    options = options or ParseOptions()
    log = FindingLog()
    scan = scan_text(data, log, options.rules)
    title_line, title_text = scan.title or (0, "")
    title, headline, h1_date = _title(title_line, title_text, scan, path, log)
    date, published = _date(h1_date, scan, path, options, log)
    assembler = Assembler(log, options.section_slugs, scan.references, breaks=not scan.wrapped)
    sections = tuple(assembler.section(raw) for raw in scan.sections)
    warmup = tuple(assembler.warmup(list(scan.warmup)))
    preamble = tuple(assembler.prose(raw) for raw in scan.preamble)
    left_out = tuple(
        Prose("\n".join(raw.lines).strip("\n"), "", raw.line) for raw in scan.left_out
    )  # not shown
    check_issue(log, scan, sections)
    send_at = _send_at(scan.front, scan.front_lines, options.timezone, log)
    findings = log.sorted()
    if date is None or published is None:
        raise UndatedIssue(path, findings)
    return Issue(
        path=path,
        stem=issue_folder_name(path),
        date=date,
        published=published,
        title=title,
        headline=headline,
        tagline=scan.tagline,
        intro=scan.intro,
        intro_html=inline_markdown_to_html(scan.intro),
        warmup=tuple(w for w, _ in warmup),
        warmup_html=tuple(h for _, h in warmup),
        sections=sections,
        findings=findings,
        draft=_is_draft(scan.front, path),
        notes=scan.notes,
        number=issue_number(scan.front, title_text or title, issue_folder_name(path)),
        preamble=preamble,
        send_at=send_at,
        left_out=left_out,
    )


def _send_at(
    front: Mapping[str, Any], lines: Mapping[str, int], tz: dt.tzinfo, log: FindingLog
) -> dt.datetime | None:
    """Front matter ``send_at: 2026-12-03 09:00`` (site timezone unless it names an offset)."""
    value = front.get("send_at")
    if value is None:
        return None
    moment = value if isinstance(value, dt.datetime) else None
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}.*", value):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        message = N_("send_at %(value)s is not a date and time such as 2026-12-03 09:00; ignored")
        log.note(lines.get("send_at", 1), "bad-send-at", ERROR, message, value=repr(str(value)))
        return None
    if moment.tzinfo is None:
        return wall_clock(moment.date(), moment.time(), tz)
    return moment


def _is_draft(front: Mapping[str, Any], path: Path) -> bool:
    """A draft by its folder (``drafts/``), front matter (``draft: true``) or Pelican's ``Status: draft``."""
    folders = path.parts[-3:-1] if issue_folder_name(path) != path.stem else path.parts[-2:-1]
    if any(folder.lower() in DRAFT_FOLDERS for folder in folders):  # drafts/x.md, drafts/x/index.md
        return True
    draft, published, status = front.get("draft"), front.get("published"), front.get("status")
    if isinstance(draft, str):
        draft = draft.strip().lower() in ("true", "yes", "1")
    if isinstance(published, str):
        published = published.strip().lower() not in ("false", "no", "0")
    return draft is True or published is False or str(status or "").strip().lower() in ("draft", "hidden")


def _title(line: int, text: str, scan: Scan, path: Path, log: FindingLog) -> tuple[str, str, dt.date | None]:
    """Title, headline and the date the title line names, if any.

    The front matter's ``title`` comes first, else the ``#`` title line; either is split
    into title and headline at a colon (or after a ``(date)``); a front matter title with
    no headline of its own takes the title line's. With neither, the file's name stands
    as the title, with a warning.
    """
    front_title = scan.front.get("title")
    from_front = isinstance(front_title, str) and bool(front_title.strip())
    if not text and not from_front:
        fallback = _title_from_name(path)
        if not scan.empty:
            message = N_(
                "no title in the front matter or a '# ' title line; titled '%(title)s' after the file"
            )
            log.note(line, "no-title", WARNING, message, title=fallback)
        return fallback, "", None
    title, headline, date = _split_title(line, text, log) if text else ("", "", None)
    if from_front:
        front_line = scan.front_lines.get("title", 1)
        title, own_headline, _ = _split_title(front_line, str(front_title).strip(), log)
        headline = own_headline or headline
    return title, headline, date


def _split_title(line: int, text: str, log: FindingLog) -> tuple[str, str, dt.date | None]:
    """``Title (date)：headline``, ``Title: headline`` or a title alone; placeholders are fatal."""
    title_date, date_end = _title_date(text)
    if date_end is not None:
        title, rest = text[:date_end].strip(), text[date_end:]
    else:
        colon = re.search(r"[：:](?!//)", text)
        title, rest = (text[: colon.start()].strip(), text[colon.end() :]) if colon else (text, "")
        if not title:  # ': headline' has no title before its colon
            title, rest = text, ""
    headline = rest.strip().lstrip("：:").strip()
    if _PLACEHOLDER.search(text):
        log.note(
            line,
            "placeholder-title",
            FATAL,
            N_("the title still has placeholder text: %(title)s"),
            title=repr(text),
        )
    elif date_end is not None and not headline and rest.strip().startswith(("：", ":")):
        log.note(
            line, "empty-headline", WARNING, N_("the title ends with a colon but has no headline after it")
        )
    return title, headline, title_date


def _title_date(text: str) -> tuple[dt.date | None, int | None]:
    """The date a title names, and where the title ends when it is a ``(date)``: the headline follows."""
    match = _DATE_PAREN.search(text)
    has_day = match and re.search(r"(?<!\d)\d{1,2}(?!\d)", match.group(1))  # '(April 2020)' names no day
    if match and has_day and (date := _parse_date(match.group(1))) is not None:
        return date, match.end()
    found = _DATE_IN_TEXT.search(text)
    return (_parse_date(found.group(1)) if found else None), None


def _title_from_name(path: Path) -> str:
    """``issue-172.md`` stands as 'Issue 172'; a folder's ``index.md`` as the folder's name."""
    stem = path.parent.name if path.stem.lower() in _INDEX_STEMS and path.parent.name else path.stem
    if not re.search(r"[^\W\d_]", stem):
        return stem
    words = re.sub(r"[-_]+", " ", stem).strip()
    return words[:1].upper() + words[1:]


def _date(
    h1_date: dt.date | None, scan: Scan, path: Path, options: ParseOptions, log: FindingLog
) -> tuple[dt.date | None, dt.datetime | None]:
    """The issue's date and when it is published: metadata, title, file name, folder, git (:mod:`.dates`)."""
    title_line, title_text = scan.title or (0, "")
    dated = issue_date(
        meta=scan.front,
        meta_lines=scan.front_lines,
        title=title_text or (h1_date.isoformat() if h1_date else ""),
        title_line=title_line,
        path=path,
        timezone=options.timezone,
        first_commits=options.first_commits,
        commit_key=path_key(path),
        log=log,
        language=options.language,
    )
    return (dated.date, dated.published) if dated else (None, None)


def _parse_date(text: str) -> dt.date | None:
    """A full date written in the title or a file name (a month and year alone are not one)."""
    return find_date(text)[0]
