"""Which files of the issues folder are issues, why the others are not, and what an ISSUE argument names.

Newsletters keep their issues flat (``2026-05-01-weekly.md``), in year folders
(``2026/issue-6.md``), one folder per issue (Hugo's page bundles: ``issue-5/index.md``,
``2024-03/index.md``, named by the folder), in ``.md`` or ``.markdown`` (Jekyll's
markdown extensions), with a ``drafts/`` folder inside or beside. Every file that is
not taken as an issue is listed with the reason, so nothing is skipped silently:
:func:`sort_entries` decides from a listing alone (pure), :func:`survey` lists a folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from digest.errors import IssueNotFound
from digest.i18n import N_, Phrase, Sentence

__all__ = [
    "DRAFT_FOLDERS",
    "ISSUE_SUFFIXES",
    "MAX_ISSUE_BYTES",
    "Entry",
    "Survey",
    "draft_paths",
    "issue_name",
    "issue_paths",
    "link_outside",
    "resolve_issue",
    "skipped_lines",
    "sort_entries",
    "survey",
    "survey_newsletter",
]

ISSUE_SUFFIXES = (".md", ".markdown", ".mdown", ".mkdn", ".mkd", ".mkdown")  # Jekyll's markdown_ext
DRAFT_FOLDERS = ("draft", "drafts", "_drafts")  # a file in one of these, inside the issues folder, is a draft
POST_FOLDERS = ("_posts",)  # the one other folder starting with "_" that holds posts
MAX_ISSUE_BYTES = 2_000_000  # the largest real issue is 30 KB
BUNDLE_PAGES = ("index", "readme")  # the page of a folder that is one issue
# Files every repository has that are about the newsletter, not issues of it (by lowercased stem).
_ABOUT_FILES = {
    "readme": N_("the folder's README"),
    "index": N_("the folder's index page"),
    "license": N_("a licence"),
    "licence": N_("a licence"),
    "copying": N_("a licence"),
    "changelog": N_("a changelog"),
    "contributing": N_("contributing notes"),
    "code_of_conduct": N_("a code of conduct"),
    "security": N_("a security policy"),
    "authors": N_("a list of authors"),
    "summary": N_("a table of contents"),
}


@dataclass(frozen=True)
class Entry:
    """One thing in the issues folder, as listed: its path relative to the folder, its kind, its size.

    ``kind`` is ``file``, ``special`` (a FIFO, socket or device), ``hidden-folder``,
    ``site-folder`` (a ``_layouts``-like folder), ``linked-folder`` or ``unreadable-folder``.
    """

    path: PurePosixPath
    kind: str = "file"
    size: int = 0


@dataclass(frozen=True)
class Survey:
    """The issue files of a folder, and every other file or folder with why it is not an issue."""

    issues: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]


_NOT_AN_ISSUE = N_("not an issue: %(reason)s")


def skipped_lines(skipped: Iterable[tuple[Path, str]], language: str = "en") -> list[str]:
    """``path: not an issue: reason`` lines, as ``digest status`` and ``digest lint`` show them."""
    return [f"{path}: " + Phrase.of(_NOT_AN_ISSUE, reason=reason).says(language) for path, reason in skipped]


def sort_entries(
    entries: Iterable[Entry], max_bytes: int = MAX_ISSUE_BYTES
) -> tuple[list[PurePosixPath], list[tuple[PurePosixPath, str]]]:
    """The issues among ``entries``, and (path, reason) for everything else. Pure: decides by the listing.

    A folder's files that are not markdown are one line for the folder (a page
    bundle's pictures), and a folder with no markdown anywhere below it is one
    line for all of it (``assets/``, a built ``site/``), not one line each.
    """
    entries = list(entries)
    issues: list[PurePosixPath] = []
    skipped: list[tuple[PurePosixPath, str]] = []
    others: dict[PurePosixPath, list[str]] = {}
    markdown = [e for e in entries if e.kind == "file" and _is_markdown(e.path)]
    by_folder: dict[PurePosixPath, list[PurePosixPath]] = {}
    for entry in markdown:
        by_folder.setdefault(entry.path.parent, []).append(entry.path)
    with_markdown = {folder for entry in markdown for folder in entry.path.parents}
    for entry in entries:
        if entry.kind != "file" or not _is_markdown(entry.path) or entry.path.name.startswith("."):
            reason = _not_markdown(entry)
            if reason is None:
                folder = _holder(entry.path, with_markdown)
                others.setdefault(folder, []).append(entry.path.suffix.lower() or entry.path.name)
            else:
                skipped.append((entry.path, reason))
            continue
        reason = _not_an_issue(entry, by_folder.get(entry.path.parent, []), max_bytes)
        if reason is None:
            issues.append(entry.path)
        else:
            skipped.append((entry.path, reason))
    for folder, kinds in others.items():
        shown = ", ".join(sorted(set(kinds))[:5])
        if len(kinds) == 1:
            skipped.append(
                (folder, Sentence(N_("holds 1 file that is not markdown (%(kinds)s)"), kinds=shown))
            )
        else:
            message = N_("holds %(count)s files that are not markdown (%(kinds)s)")
            skipped.append((folder, Sentence(message, count=len(kinds), kinds=shown)))
    return sorted(issues), sorted(skipped)


def _holder(path: PurePosixPath, with_markdown: set[PurePosixPath]) -> PurePosixPath:
    """The folder a file that is not markdown is listed under.

    The topmost one with no markdown below it (``site/``, not each of its folders),
    else its own (an issue folder's pictures).
    """
    return next((folder for folder in reversed(path.parents) if folder not in with_markdown), path.parent)


def _is_markdown(path: PurePosixPath) -> bool:
    return path.suffix.lower() in ISSUE_SUFFIXES


def _not_markdown(entry: Entry) -> Sentence | None:
    """Why a folder, special file or hidden file is not read; None for an ordinary non-markdown file."""
    reasons = {
        "special": N_("not a regular file (a FIFO, socket or device)"),
        "hidden-folder": N_("a hidden folder; not read"),
        "site-folder": N_("a site folder (its name starts with '_'); not read"),
        "linked-folder": N_("a symlink to a folder; not followed"),
        "unreadable-folder": N_("a folder digest may not read (check its permissions)"),
    }
    if entry.kind in reasons:
        return Sentence(reasons[entry.kind])
    if entry.path.name.startswith("."):
        return Sentence(N_("a hidden file"))
    return None


def _not_an_issue(entry: Entry, siblings: Sequence[PurePosixPath], max_bytes: int) -> Sentence | None:
    """Why a markdown file is not an issue, or None when it is one."""
    path = entry.path
    stem = path.stem.lower()
    own_folder = path.parent != PurePosixPath(".") and path.parent.name.lower() not in DRAFT_FOLDERS
    folder_page = _folder_page(siblings) if own_folder else None
    if entry.size > max_bytes:
        message = N_("is %(size)s MB; an issue file may be at most %(limit)s MB")
        return Sentence(message, size=f"{entry.size / 1e6:.1f}", limit=f"{max_bytes / 1e6:.0f}")
    if stem == "_index":
        return Sentence(N_("a section's list page (Hugo's _index)"))
    if folder_page is not None:
        if path == folder_page:
            return None
        message = N_("a file of the issue folder '%(folder)s', whose page is %(page)s")
        return Sentence(message, folder=str(path.parent), page=folder_page.name)
    if stem in _ABOUT_FILES:
        return Sentence(_ABOUT_FILES[stem])
    if "template" in stem:
        return Sentence(N_("a template"))
    if stem.startswith("_"):
        return Sentence(N_("its name starts with '_', which marks a partial"))
    return None


def _folder_page(siblings: Sequence[PurePosixPath]) -> PurePosixPath | None:
    """The page of a folder that is one issue: its ``index.md``, or a ``README.md`` that is alone."""
    pages = {path.stem.lower(): path for path in siblings if path.stem.lower() in BUNDLE_PAGES}
    if "index" in pages:
        return pages["index"]
    if "readme" in pages and len(siblings) == 1:
        return pages["readme"]
    return None


def survey(directory: Path, max_bytes: int = MAX_ISSUE_BYTES) -> Survey:
    """The issue files under ``directory`` (any depth), and the rest with reasons."""
    issues, skipped = sort_entries(_listing(directory), max_bytes)
    return Survey(
        tuple(directory / path for path in issues),
        tuple((directory / path, reason) for path, reason in skipped),
    )


def _listing(directory: Path) -> list[Entry]:
    """Every file under ``directory``; hidden and ``_`` folders (``.git``, ``_site``) are one entry each."""
    if not directory.is_dir():
        problem = "does not exist" if not directory.exists() else "is not a folder"
        raise IssueNotFound(f"the issues directory {problem}; check [paths] issues", path=directory)
    entries: list[Entry] = []

    try:
        os.listdir(directory)
    except OSError as exc:
        raise IssueNotFound(f"cannot list issues: {exc.strerror or exc}", path=directory) from None

    def unreadable(exc: OSError) -> None:  # a folder below: listed, and the rest is still read
        where = Path(exc.filename or directory)
        entries.append(Entry(PurePosixPath(where.relative_to(directory).as_posix()), "unreadable-folder"))

    for root, folders, files in os.walk(directory, onerror=unreadable):
        here = PurePosixPath(Path(root).relative_to(directory).as_posix())
        kept = []
        for name in sorted(folders):
            kind = _folder_kind(Path(root) / name, name)
            if kind is None:
                kept.append(name)
            else:
                entries.append(Entry(here / name, kind))
        folders[:] = kept
        entries.extend(_file_entry(Path(root) / name, here / name) for name in files)
    return entries


def _folder_kind(path: Path, name: str) -> str | None:
    """Why a folder is not walked into, or None when it is."""
    if path.is_symlink():
        return "linked-folder"
    if name.startswith("."):
        return "hidden-folder"
    if name.startswith("_") and name.lower() not in DRAFT_FOLDERS + POST_FOLDERS:
        return "site-folder"
    return None


def _file_entry(path: Path, relative: PurePosixPath) -> Entry:
    try:
        info = path.stat()
    except OSError:  # a dangling link: listed as a file, so reading it names the problem
        return Entry(relative)
    return Entry(relative, "file" if stat.S_ISREG(info.st_mode) else "special", info.st_size)


def survey_newsletter(directory: Path) -> Survey:
    """:func:`survey` of the issues folder and of a drafts folder beside it (``issues/../drafts/``)."""
    surveys = [survey(directory)] + [survey(folder) for folder in _drafts_beside(directory)]
    return Survey(
        tuple(path for found in surveys for path in found.issues),
        tuple(pair for found in surveys for pair in found.skipped),
    )


def _drafts_beside(directory: Path) -> list[Path]:
    if directory.name.lower() in DRAFT_FOLDERS:
        return []
    return [folder for name in DRAFT_FOLDERS if (folder := directory.parent / name).is_dir()]


def issue_paths(directory: Path) -> list[Path]:
    """The issue files under a directory (see :func:`survey` for the others and why)."""
    return list(survey(directory).issues)


def draft_paths(directory: Path) -> list[Path]:
    """The files of a ``draft/``, ``drafts/`` or ``_drafts/`` folder beside the issues folder.

    One inside the issues folder is part of :func:`survey` already.
    """
    return [path for folder in _drafts_beside(directory) for path in survey(folder).issues]


def issue_name(directory: Path, path: Path) -> str:
    """How state, status and previews name a file: its path in the issues folder, without the extension.

    ``2026-05-01`` for a file at the top, ``2026/issue-6`` in a year folder,
    ``issue-5`` for ``issue-5/index.md``, ``drafts/STEM`` for a draft beside the
    folder. A draft and the issue it becomes often share a file name; they must not
    share a record (approval, history) or a preview.
    """
    absolute = Path(os.path.normpath(path.absolute()))
    base = Path(os.path.normpath(directory.absolute()))
    bundle = absolute.stem.lower() in BUNDLE_PAGES and absolute.parent != base
    if base in absolute.parents:
        relative = absolute.relative_to(base)
        return (relative.parent if bundle else relative.with_suffix("")).as_posix()
    holder = absolute.parent.parent if bundle else absolute.parent
    return f"{holder.name}/{absolute.parent.name if bundle else absolute.stem}"


def resolve_issue(directory: Path, ref: str) -> Path:
    """An ISSUE argument: its name in ``digest status`` (``2026/issue-6``), its stem alone, or a path."""
    candidate = Path(ref)
    if candidate.suffix.lower() in ISSUE_SUFFIXES:
        for path in (candidate, directory / candidate, directory / candidate.name):
            if path.is_file():
                return path
        raise IssueNotFound("no such issue file", path=candidate)
    known = issue_paths(directory) + draft_paths(directory)
    for path in known:
        if issue_name(directory, path) == ref:
            return path
    same_stem = [path for path in known if issue_name(directory, path).rsplit("/", 1)[-1] == ref]
    if len(same_stem) == 1:
        return same_stem[0]
    if candidate.is_file():
        return candidate
    if same_stem:
        names = ", ".join(issue_name(directory, path) for path in same_stem)
        raise IssueNotFound(f"'{ref}' could be any of {names}: name one")
    raise IssueNotFound(f"no issue '{ref}' in {directory} (digest status lists them)")


def link_outside(directory: Path, path: Path) -> Path | None:
    """Where ``path``, a file of ``directory``, really is when a symlink takes it outside; else None.

    Whatever a link in the issues folder points at (a file elsewhere in the repo,
    ``/etc/passwd``, another checkout) is not part of the newsletter, so it is
    neither fed nor mailed.
    """
    try:
        folder = directory.resolve()
        parent = path.parent.resolve()
        if (parent != folder and folder not in parent.parents) or not path.is_symlink():
            return None
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, or a loop of links
        return path
    return None if folder in target.parents else target
