"""When each issue file was first committed: the date of a newsletter that writes none in its files.

With ``[newsletter] date_from = "git"``, one ``git log`` over the issues folder
(``--diff-filter=AR``, oldest first, following renames) gives every file its first
commit at once, rather than one ``git log --follow`` per file.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

__all__ = ["first_commits"]

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
