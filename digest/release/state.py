"""What digest remembers about each issue file between runs (``[paths] state``/issues.json).

Config is what the editor sets; this is what the tool has seen: each file's
content hash, when it was first seen and last changed, whether it is history,
the editor's approval or hold, and the date it was mailed as. Whether an
issue was mailed is not decided here: the delivery ledgers are the record of
that, so a lost or corrupt state file is rebuilt from them and never causes
anyone to be mailed again. A rebuilt state cannot know what the editor
approved, so every issue file present then is history, mailed only when the
editor says so again; a hold is also noted beside the ledgers
(``ledger/<issue>.held``), so it outlives the state file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from digest.errors import StateError
from digest.fsutil import file_lock, read_json, set_aside, write_json
from digest.send.ledger import ledger_path, ledger_stems

__all__ = [
    "Approval",
    "IssueRecord",
    "RunState",
    "hold_path",
    "load_state",
    "locked_state",
    "rebuild_state",
    "state_path",
]

STATE_FILE = "issues.json"
VERSION = 1


def state_path(state_dir: Path) -> Path:
    """The state file in ``[paths] state``."""
    return state_dir / STATE_FILE


def hold_path(state_dir: Path, key: str) -> Path:
    """Where ``digest hold`` notes a hold beside the ledgers, so that a rebuilt state keeps it."""
    return ledger_path(state_dir, key).with_name(f"{key}.held")


@dataclass(frozen=True)
class Approval:
    """The editor's go-ahead for one version of an issue (its content hash)."""

    hash: str
    at: str
    force: bool = False


@dataclass(frozen=True)
class IssueRecord:
    """One issue file as digest last saw it (by its stem), and the editor's decision on it."""

    hash: str  # sha256 of the file's bytes
    first_seen: str
    changed_at: str
    history: bool = False
    approval: Approval | None = None
    held: bool = False
    mailed: str = ""  # the issue key (date) this file was mailed as

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.approval is None:
            data.pop("approval")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IssueRecord:
        """A record as saved; raises ValueError, TypeError or KeyError for any other shape."""
        approval = data.get("approval")
        for stamp in (data["first_seen"], data["changed_at"]):
            if dt.datetime.fromisoformat(stamp).tzinfo is None:
                raise ValueError("a time without its zone")
        return cls(
            hash=str(data["hash"]),
            first_seen=data["first_seen"],
            changed_at=data["changed_at"],
            history=bool(data.get("history", False)),
            approval=(
                Approval(str(approval["hash"]), str(approval["at"]), bool(approval.get("force", False)))
                if isinstance(approval, dict)
                else None
            ),
            held=bool(data.get("held", False)),
            mailed=str(data.get("mailed", "")),
        )


@dataclass(frozen=True)
class RunState:
    """The whole state file: when digest first ran here, and a record per issue stem."""

    initialized: str
    issues: dict[str, IssueRecord] = field(default_factory=dict)
    rebuilt: str = ""  # why the state was rebuilt on load, to tell the editor

    @property
    def initialized_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.initialized)

    def with_record(self, stem: str, record: IssueRecord) -> RunState:
        return replace(self, issues={**self.issues, stem: record})

    def without(self, stem: str) -> RunState:
        return replace(self, issues={k: v for k, v in self.issues.items() if k != stem})

    def to_json(self) -> dict[str, Any]:
        issues = {stem: record.to_json() for stem, record in sorted(self.issues.items())}
        return {"version": VERSION, "initialized": self.initialized, "issues": issues}

    def save(self, state_dir: Path) -> bool:
        return write_json(state_path(state_dir), self.to_json())


def load_state(state_dir: Path) -> RunState | None:
    """The saved state, None when there is none yet; a corrupt file is rebuilt (see :func:`rebuild_state`)."""
    path = state_path(state_dir)
    try:
        data = read_json(path, what="the issue state")
    except StateError as exc:
        return rebuild_state(state_dir, f"{exc}; {_set_aside(path)}, rebuilt from the delivery ledgers")
    if data is None:
        return None
    try:
        if data.get("version") != VERSION:
            raise ValueError("unknown version")
        dt.datetime.fromisoformat(data["initialized"])
        issues = {str(stem): IssueRecord.from_json(record) for stem, record in data["issues"].items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        return rebuild_state(
            state_dir, f"{path} is not a valid state file; {_set_aside(path)}, rebuilt from the ledgers"
        )
    return RunState(data["initialized"], issues)


def _set_aside(path: Path) -> str:
    """Keep an unusable state file for a look (``issues.json.corrupt-<time>``) and make room for a new one."""
    try:
        aside = set_aside(path)
    except FileNotFoundError:
        return "gone meanwhile"
    except OSError as exc:
        raise StateError(f"is unusable and cannot be set aside: {exc.strerror or exc}", path=path) from None
    return f"set aside as {aside.name}"


def rebuild_state(state_dir: Path, reason: str) -> RunState:
    """A fresh state after loss or corruption: every issue file present is history, whatever ``since`` says.

    Issues with a delivery ledger keep their mailing record in it; nothing else is
    mailed automatically until the editor approves it (or, in auto mode, until a
    new issue appears). Nobody is mailed twice because of a lost state file.
    """
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    known = ", ".join(ledger_stems(state_dir)) or "none"
    return RunState(initialized=now, rebuilt=f"{reason} (issues with a ledger: {known})")


@contextlib.contextmanager
def locked_state(state_dir: Path) -> Iterator[list[RunState | None]]:
    """Read-modify-write the state under its lock: ``with locked_state(d) as box: box[0] = new``."""
    with file_lock(state_dir / "state.lock", what="the issue state", wait=30):
        box: list[RunState | None] = [load_state(state_dir)]
        original = box[0]
        yield box
        if box[0] is not None and box[0] != original:
            box[0].save(state_dir)
