"""A full disk (ENOSPC) under each file digest writes: one line naming the path, never "internal error".

The disk is a real 256 KiB tmpfs filled to the last byte when the tests may mount one (root, as in
CI); otherwise every fsync under the folder answers ENOSPC, injected into the real subprocess.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_digest, write_subscribers

INJECT = """\
import errno, os
_root, _fsync = os.environ["DIGEST_TEST_FULL_DISK"], os.fsync
def _full(fd):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if target.startswith(_root):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)
os.fsync = _full
"""


def _fill(directory: Path) -> None:
    """Take every free byte (and inode) of the file system ``directory`` is on."""
    with contextlib.suppress(OSError), (directory / ".ballast").open("wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    for n in range(100_000):
        try:
            (directory / f".inode{n}").touch()
        except OSError:
            break


@pytest.fixture
def full_disk(tmp_path, run_env):
    """A folder on a full disk, and the environment a digest subprocess runs in with it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = os.geteuid() == 0 and shutil.which("mount") is not None
    if mounted:
        mounted = (
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)]).returncode == 0
        )
    if mounted:
        _fill(disk)
    else:
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(INJECT)
        run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hooks), run_env.get("PYTHONPATH")]))
        run_env["DIGEST_TEST_FULL_DISK"] = str(disk)
    try:
        yield disk, run_env
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def _site(root: Path, disk: Path, on_disk: str) -> Path:
    """A newsletter whose ``[paths] on_disk`` folder is on the full disk (made before it filled)."""
    (root / "issues").mkdir(parents=True)
    for issue in sorted((EXAMPLES / "issues").glob("*.md")):
        shutil.copy(issue, root / "issues")
    write_subscribers(root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    paths = {"issues": "issues", "feeds": "feeds", "state": "state", "previews": "previews"}
    paths["subscribers"] = "subscribers.csv"
    maildir = str(disk / "maildir") if on_disk == "maildir" else "maildir"
    if on_disk != "maildir":
        paths[on_disk] = str(disk / ("subscribers.csv" if on_disk == "subscribers" else on_disk))
    config = root / "digest.toml"
    config.write_text(
        '[site]\ntitle = "简报"\nbase_url = "https://news.example.org/"\ntimezone = "Asia/Shanghai"\n'
        "[paths]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in paths.items())
        + '[email]\nfrom = "简报 <d@example.org>"\n'
        'transport = "maildir:' + maildir + '"\nunsubscribe_mailto = "leave@example.org"\n',
        encoding="utf-8",
    )
    return config


# which folder is on the full disk -> the command that writes there
CASES = [
    ("feeds", ["feeds"], "feeds"),
    ("state", ["run"], "state"),
    ("previews", ["preview", "2026-11-01"], "previews"),
    ("subscribers", ["subscribers", "add", "new@example.com"], "subscribers"),
    ("state", ["preview", "2026-11-01"], "signing key"),  # the first command makes the key
    ("state", ["send", "2026-11-01", "--no-progress"], "ledger"),
    ("maildir", ["send", "2026-11-01", "--no-progress"], "maildir"),
]


@pytest.mark.parametrize(("on_disk", "command", "what"), CASES, ids=[c[2] for c in CASES])
def test_a_full_disk_is_one_line_naming_the_path(tmp_path, full_disk, on_disk, command, what):
    disk, env = full_disk
    config = _site(tmp_path / "site", disk, on_disk)
    if on_disk == "subscribers":
        _seed_list(disk, env)
    if what in (
        "ledger",
        "maildir",
    ):  # no key file to write first: the ledger or the Maildir meets the full disk
        env = {**env, "DIGEST_SECRET": "a-test-signing-key-of-enough-length"}
    result = run_digest([*command, "--config", str(config)], env, cwd=tmp_path)
    output = result.stderr + result.stdout
    assert result.returncode not in (0, 70), result
    assert "internal error" not in output and "Traceback" not in output
    lines = [line for line in output.splitlines() if os.strerror(errno.ENOSPC) in line]
    assert len(lines) == 1 and f" {disk}/" in lines[0], output  # "digest: PATH: ..." ("error: PATH" in run)


def _seed_list(disk: Path, env: dict[str, str]) -> None:
    """The subscriber list was on the disk before it filled: free the ballast, write it, fill again."""
    ballast = disk / ".ballast"
    if ballast.exists():
        ballast.unlink()
    write_subscribers(disk / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    if "DIGEST_TEST_FULL_DISK" not in env:
        _fill(disk)
