"""Files that survive crashes: atomic writes, append-only logs and advisory locks.

Every file digest writes goes through here. A write lands whole or not at all
(temp file in the same directory, fsync, rename, fsync the directory), so a
SIGKILL never leaves half a feed, half a state file or half a subscriber list.
Locks are ``flock`` locks on a sibling ``.lock`` file: they vanish with the
process that held them, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from digest.errors import LockBusy, StateError

__all__ = [
    "atomic_write",
    "file_lock",
    "fsync_directory",
    "read_json",
    "set_aside",
    "write_changed_files",
    "write_error",
    "write_if_changed",
    "write_json",
]


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    data: bytes | Callable[[BinaryIO], None],
    *,
    mode: int = 0o644,
    before_replace: Callable[[Path], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` all at once: readers see the old file or the new one.

    ``data`` is the bytes, or a function that writes them to the file it is given
    (so a large file need not be held in memory).

    Any failure (a full disk, a read-only or missing folder, no permission) is a
    :class:`StateError` naming ``path``; the old file is then left as it was.
    ``before_replace`` sees the finished temporary file just before it takes ``path``'s place.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None


def set_aside(path: Path) -> Path:
    """Rename an unusable state file to ``<name>.corrupt-<UTC time>``, kept for a look; the new path.

    An ``OSError`` (the file gone meanwhile, no permission) is the caller's to word.
    """
    aside = path.with_name(f"{path.name}.corrupt-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}")
    path.rename(aside)
    return aside


def write_error(path: Path, exc: OSError) -> StateError:
    """One line for a write that failed: the path, the reason, and for a full disk what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free some space and run the command again; nothing was half-written)"
    return StateError(f"cannot write: {reason}", path=path)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically unless the file already holds exactly ``data``; True when written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:  # absent, or unreadable: writing it says what is wrong
        pass
    atomic_write(path, data)
    return True


def write_changed_files(outputs: Mapping[str, bytes], directory: Path) -> list[Path]:
    """Write each file of ``directory`` whose bytes changed (name -> bytes); return the paths written."""
    return [
        directory / name for name, data in sorted(outputs.items()) if write_if_changed(directory / name, data)
    ]


def read_json(path: Path, *, what: str) -> Any | None:
    """Read a JSON state file; None when absent; :class:`StateError` when unreadable or corrupt."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {what}: {exc.strerror or exc}", path=path) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"{what} is corrupt ({exc.__class__.__name__})", path=path) from None


def write_json(path: Path, value: Any) -> bool:
    """Write JSON state atomically (sorted keys, so unchanged state is byte-identical)."""
    data = json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8") + b"\n"
    return write_if_changed(path, data)


@contextlib.contextmanager
def file_lock(path: Path, *, what: str, wait: float | None = 0.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed).

    ``wait``: seconds to wait for another holder (None: forever, 0: not at all).
    Raises :class:`LockBusy` naming ``what`` when the lock stays taken.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(
            f"cannot use {path.parent} for {what}: {exc.strerror or exc} (check [paths] in the config)",
            path=path,
        ) from None
    try:
        _acquire(fd, path, what, wait)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str, wait: float | None) -> None:
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise StateError(f"cannot lock: {exc.strerror}", path=path) from None
        if time.monotonic() >= deadline:
            raise LockBusy(f"{what} is busy in another digest process; try again when it ends", path=path)
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.2)
