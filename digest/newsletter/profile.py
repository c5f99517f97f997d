"""What a folder of issues says about its newsletter: language, where dates come from, its sections.

``digest init`` writes a first config from this, so a newsletter that digest has
never seen starts from its own shape (its headings, its language, its dates)
rather than from another newsletter's defaults. Everything here reads; nothing
writes.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.errors import ParseError
from digest.newsletter.assemble import derive_slug
from digest.newsletter.discover import ISSUE_SUFFIXES, draft_paths, issue_paths
from digest.newsletter.model import Issue
from digest.newsletter.parse import ParseOptions, UndatedIssue, path_key, read_issue, read_source

__all__ = [
    "ISSUE_FOLDERS",
    "Profile",
    "detect_language",
    "find_issue_folder",
    "markdown_files",
    "profile_issues",
]

# Where site generators keep posts, in the order they are looked for (the first holding issues wins).
ISSUE_FOLDERS = ("issues", "_posts", "content/posts", "content/newsletter", "content", "posts", "newsletter")
SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
_NOW = dt.datetime.now(dt.UTC)
_SAMPLE = 60  # the newest files read for the language: enough to decide, quick on 500 issues
_URL = re.compile(r"\]\([^)]*\)|https?://\S+|`[^`]*`|<[^>]*>")


@dataclass(frozen=True)
class Profile:
    """A folder of issues as ``digest init`` found it."""

    folder: Path
    files: int  # issue files and drafts found
    markdown: int  # markdown files at any depth of the folder
    dated: int  # of which a date was read from the file itself (front matter, title or name)
    language: str  # a BCP 47 tag such as "en", "zh-CN", "ja"
    date_from: str  # "content" or "git"
    in_git: bool
    sections: tuple[tuple[str, str], ...]  # (heading, feed slug), the most used first
    title: str  # the newsletter's name as its issues spell it, "" when they do not agree

    @property
    def undated(self) -> int:
        return self.files - self.dated


def find_issue_folder(root: Path) -> Path | None:
    """The folder of ``root`` that holds issue files: a usual place, else ``root`` itself; None if none."""
    for name in ISSUE_FOLDERS:
        folder = root / name
        if folder.is_dir() and markdown_files(folder):
            return folder
    return root if issue_paths(root) else None


def markdown_files(folder: Path) -> int:
    """How many markdown files ``folder`` holds at any depth (issues in year or per-issue folders too)."""
    return sum(1 for path in folder.rglob("*") if path.suffix.lower() in ISSUE_SUFFIXES and path.is_file())


def profile_issues(folder: Path, *, min_uses: int = 2) -> Profile:
    """Read every issue of ``folder`` (and its drafts) once and describe the newsletter.

    A heading becomes a section when at least ``min_uses`` issues have items under
    it (every such heading, for a newsletter of fewer issues); one-off headings stay
    unknown sections, which lint points out with their slug.
    """
    paths = issue_paths(folder) + draft_paths(folder)
    issues, dated = _read_all(paths)
    in_git = _in_git(folder)
    date_from = "git" if in_git and dated < len(paths) / 2 else "content"
    return Profile(
        folder=folder,
        files=len(paths),
        markdown=markdown_files(folder),
        dated=dated,
        language=detect_language(_texts(sorted(paths)[-_SAMPLE:])),
        date_from=date_from,
        in_git=in_git,
        sections=_sections(issues, min(min_uses, max(1, len(issues)))),
        title=_common_title(issue.title for issue in issues),
    )


def _read_all(paths: Sequence[Path]) -> tuple[list[Issue], int]:
    """Every file that parses, and how many of them carry their own date.

    An undated file is read again as if committed now: its headings count for the
    sections whether its date will come from git or not.
    """
    issues: list[Issue] = []
    dated = 0
    for path in paths:
        try:
            issues.append(read_issue(path, ParseOptions()))
            dated += 1
        except UndatedIssue:
            undated = ParseOptions(date_from="git", first_commits={path_key(path): _NOW})
            try:
                issues.append(read_issue(path, undated))
            except ParseError:
                continue
        except ParseError:
            continue  # unreadable: counted, not surveyed
    return issues, dated


def _sections(issues: Sequence[Issue], min_uses: int) -> tuple[tuple[str, str], ...]:
    # a section that is prose in every issue (an essay, "how to contribute") has no feed to name
    uses = Counter(name for issue in issues for name in {s.name.strip() for s in issue.sections if s.items})
    found: list[tuple[str, str]] = []
    for name, count in uses.most_common():
        slug = derive_slug(name, {})[0]
        if count >= min_uses and name and SLUG.fullmatch(slug):
            found.append((name, slug))
    return tuple(found)


def _common_title(titles: Iterable[str]) -> str:
    """The words every title shares once numbers and dates are taken out ("Weekly #12" -> "Weekly")."""
    stripped = Counter(
        re.sub(r"[\s#:：.,\-—|()（）\[\]]+", " ", re.sub(r"\d+", " ", title)).strip() for title in titles
    )
    stripped.pop("", None)
    if not stripped:
        return ""
    name, count = stripped.most_common(1)[0]
    return name if count * 2 >= sum(stripped.values()) else ""


def _texts(paths: Iterable[Path]) -> Iterable[str]:
    for path in paths:
        try:
            yield read_source(path).decode("utf-8", errors="replace")
        except ParseError:
            continue


def detect_language(texts: Iterable[str]) -> str:
    """The language the issues are written in, from the scripts of their words (links and code left out).

    Scripts tell Chinese, Japanese, Korean and Russian from the languages written
    in Latin letters, which all read as English: ``digest init --language`` says otherwise.
    """
    counts: Counter[str] = Counter()
    for text in texts:
        for char in _URL.sub(" ", text):
            counts[_script(char)] += 1
    cjk = counts["han"] + counts["kana"] + counts["hangul"]
    if cjk and cjk * 2 >= counts["latin"] / 2:
        if counts["kana"] * 10 >= cjk:
            return "ja"
        if counts["hangul"] * 2 >= cjk:
            return "ko"
        return "zh-CN"
    return "ru" if counts["cyrillic"] > counts["latin"] else "en"


def _script(char: str) -> str:
    code = ord(char)
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
        return "han"
    if 0x3040 <= code <= 0x30FF:
        return "kana"
    if 0xAC00 <= code <= 0xD7AF:
        return "hangul"
    if 0x0400 <= code <= 0x04FF:
        return "cyrillic"
    return "latin" if char.isascii() and char.isalpha() else "other"


def _in_git(folder: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"
