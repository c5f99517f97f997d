"""When each issue file was first committed: the date of an issue that writes none in its file.

One ``git log`` over the issues folder (``--diff-filter=AR``, oldest first,
following renames) gives every file its first commit at once, rather than one
``git log --follow`` per file. :class:`FirstCommits` runs it only when a file
with no date of its own asks, so a newsletter that dates every file never pays for it.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["FirstCommits", "first_commits"]

_MARK = "\x01"


def first_commits(directory: Path) -> dict[str, dt.datetime]:
    """Absolute path of each file under ``directory`` -> its first commit's author date.

    A folder outside any git repository, or no git at all, gives an empty mapping:
    every undated file is then reported as not committed.
    """
    command = [
        "git", "-c", "core.quotepath=off", "-C", str(directory), "log", "--reverse", "--relative",
        "--diff-filter=AR", "-M", f"--format={_MARK}%aI", "--name-status", "--", ".",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    first: dict[str, dt.datetime] = {}
    when: dt.datetime | None = None
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            when = dt.datetime.fromisoformat(line[1:].strip())
            continue
        fields = line.split("\t")
        if when is None or len(fields) < 2:
            continue
        if fields[0].startswith("R") and len(fields) == 3:
            first[fields[2]] = first.pop(fields[1], when)
        elif fields[0] == "A":
            first.setdefault(fields[1], when)
    base = directory.absolute()
    return {os.path.normpath(base / name): stamp for name, stamp in first.items()}


class FirstCommits(Mapping[str, dt.datetime]):
    """:func:`first_commits` of a folder, read from git the first time a file is looked up.

    A file outside the folder (a ``drafts/`` folder beside it, a file named on the
    command line) has its own folder read the same way, once.
    """

    def __init__(self, directory: Path):
        self._base = os.path.normpath(directory.absolute())
        self._read: dict[str, dict[str, dt.datetime]] = {}  # folder -> its files' first commits

    @property
    def asked(self) -> bool:
        """Whether git has been run (only a file with no date of its own makes it run)."""
        return bool(self._read)

    def _folder_of(self, key: str) -> str:
        inside = os.path.commonpath([self._base, key]) == self._base if os.path.isabs(key) else False
        return self._base if inside else os.path.dirname(key)

    def _commits(self, folder: str) -> dict[str, dt.datetime]:
        if folder not in self._read:
            self._read[folder] = first_commits(Path(folder))
        return self._read[folder]

    def __getitem__(self, key: str) -> dt.datetime:
        return self._commits(self._folder_of(key))[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commits(self._base))

    def __len__(self) -> int:
        return len(self._commits(self._base))
