"""Finding issue files on disk, and turning an ISSUE argument into one of them."""

from __future__ import annotations

from pathlib import Path

from digest.errors import IssueNotFound

__all__ = [
    "DRAFT_FOLDERS",
    "ISSUE_SUFFIXES",
    "draft_paths",
    "issue_name",
    "issue_paths",
    "link_outside",
    "resolve_issue",
]

ISSUE_SUFFIXES = (".md", ".markdown")
_NOT_ISSUES = ("readme", "index", "license", "changelog")
DRAFT_FOLDERS = ("draft", "drafts", "_drafts")  # a file in one of these, inside the issues folder, is a draft


def issue_paths(directory: Path) -> list[Path]:
    """The issue files of a directory, by name; README, index and hidden files are not issues."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        raise IssueNotFound(
            "the issues directory does not exist; check [paths] issues", path=directory
        ) from None
    except OSError as exc:
        raise IssueNotFound(f"cannot list issues: {exc.strerror or exc}", path=directory) from None
    return sorted(
        path
        for path in entries
        if path.suffix.lower() in ISSUE_SUFFIXES
        and not path.name.startswith((".", "_"))
        and path.stem.lower() not in _NOT_ISSUES
        and path.is_file()
    )


def issue_name(directory: Path, path: Path) -> str:
    """How state, status and previews name a file: its stem, or ``drafts/STEM`` for a drafts folder's.

    A draft and the issue it becomes often share a file name; they must not
    share a record (approval, history) or a preview.
    """
    if path.parent.resolve() == directory.resolve():
        return path.stem
    return f"{path.parent.name}/{path.stem}"


def draft_paths(directory: Path) -> list[Path]:
    """The files of a ``draft/``, ``drafts/`` or ``_drafts/`` folder inside the issues folder or beside it."""
    folders = [directory / name for name in DRAFT_FOLDERS]
    if directory.name.lower() not in DRAFT_FOLDERS:
        folders += [directory.parent / name for name in DRAFT_FOLDERS]
    return [path for folder in folders if folder.is_dir() for path in issue_paths(folder)]


def resolve_issue(directory: Path, ref: str) -> Path:
    """An ISSUE argument: a file's stem in the issues directory (``2022-07-01``) or a path."""
    candidate = Path(ref)
    if candidate.suffix.lower() in ISSUE_SUFFIXES or "/" in ref:
        for path in (candidate, directory / candidate.name):
            if path.is_file():
                return path
        raise IssueNotFound("no such issue file", path=candidate)
    for path in issue_paths(directory):
        if path.stem == ref:
            return path
    raise IssueNotFound(f"no issue '{ref}' in {directory} (digest status lists them)")


def link_outside(directory: Path, path: Path) -> Path | None:
    """Where ``path``, a file of ``directory``, really is when a symlink takes it outside; else None.

    Whatever a link in the issues folder points at (a file elsewhere in the repo,
    ``/etc/passwd``, another checkout) is not part of the newsletter, so it is
    neither fed nor mailed.
    """
    try:
        folder = directory.resolve()
        if path.parent.resolve() != folder or not path.is_symlink():
            return None
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, or a loop of links
        return path
    return None if folder in target.parents else target
