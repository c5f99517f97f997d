"""The fast idle pass of ``digest run``: answer "nothing to do" from a snapshot.

Cron may start ``digest run`` every minute. When no input changed since the
last full run, no time-based event is due and no send is pending, it is enough
to stat a few files and exit: no parsing, no config loading, no heavy imports.
The inputs include every file of the delivery ledger directory, so a send that
another process began and did not finish (``digest send`` killed, say) makes the
next run a full one, which resumes it.
This module imports only ``os``, ``sys`` and ``marshal`` (built in) for that reason.

The snapshot is a cache, not state: it lives in ``$XDG_CACHE_HOME/digest/``,
deleting it only costs one full run, and any doubt means a full run.
"""

from __future__ import annotations

import marshal
import os
import sys

__all__ = ["config_path_from_argv", "is_idle", "snapshot_path", "stat_inputs", "write_snapshot"]

SNAPSHOT_VERSION = 3
LEDGER_DIR = "ledger"  # beside the state file, as digest.send.ledger keeps it


def config_path_from_argv(argv: list[str]) -> str | None:
    """The config ``digest run [--quiet] [--config PATH]`` would load, or None if argv is anything else."""
    explicit = None
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("--quiet", "-q"):
            index += 1
        elif arg == "--config" and index + 1 < len(argv):
            explicit = argv[index + 1]
            index += 2
        elif arg.startswith("--config="):
            explicit = arg.split("=", 1)[1]
            index += 1
        else:
            return None
    path = explicit or os.environ.get("DIGEST_CONFIG") or "digest.toml"
    return os.path.abspath(path)


def snapshot_path(config_path: str) -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "digest", f"run-{_path_key(config_path):016x}.snapshot")


def _path_key(path: str) -> int:
    """64-bit FNV-1a of the config path: a stable file name without importing zlib or hashlib."""
    key = 0xCBF29CE484222325
    for byte in path.encode("utf-8", "surrogateescape"):
        key = ((key ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return key


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def _stat_dir(directory: str) -> dict[str, tuple[int, int] | None]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    return {name: _stat(os.path.join(directory, name)) for name in names if not name.startswith(".")}


def stat_inputs(config_path: str, issues_dir: str, state_file: str) -> dict[str, object]:
    """Everything whose change means a full run is needed: config, issue files, state, ledgers."""
    return {
        "config": _stat(config_path),
        "state": _stat(state_file),
        "issues": _stat_dir(issues_dir),
        "ledgers": _stat_dir(os.path.join(os.path.dirname(state_file), LEDGER_DIR)),
    }


def write_snapshot(
    config_path: str, paths: dict[str, str], inputs: dict[str, object], wake_at: float | None, pending: bool
) -> None:
    """Remember what a full run saw (inputs as stat'ed when it *began*) and when to wake up."""
    data = {
        "version": SNAPSHOT_VERSION,
        "python": sys.version,
        "paths": paths,
        "inputs": inputs,
        "wake_at": wake_at,
        "pending": pending,
    }
    path = snapshot_path(config_path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as handle:
            marshal.dump(data, handle)
        os.replace(tmp, path)
    except OSError:  # no cache, no fast path: the next run is a full one
        try:  # noqa: SIM105 (contextlib is one import more on the fast path)
            os.unlink(tmp)
        except OSError:
            pass


def is_idle(config_path: str, now: float) -> bool:
    """True only when the last full run saw exactly these inputs and nothing is due."""
    try:
        with open(snapshot_path(config_path), "rb") as handle:
            data = marshal.load(handle)
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if (
        not isinstance(data, dict)
        or data.get("version") != SNAPSHOT_VERSION
        or data.get("python") != sys.version
    ):
        return False
    if data.get("pending") is not False:
        return False
    wake_at = data.get("wake_at")
    if wake_at is not None and (not isinstance(wake_at, float | int) or now >= wake_at):
        return False
    paths = data.get("paths")
    if not isinstance(paths, dict) or not all(isinstance(paths.get(k), str) for k in ("issues", "state")):
        return False
    return stat_inputs(config_path, paths["issues"], paths["state"]) == data.get("inputs")
