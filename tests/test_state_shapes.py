"""No state file of any shape stops digest with "internal error": real files, real `digest` processes.

Each case damages one file of the bundled example's state after a first run
(which mailed 2026-11-01 to its three subscribers), then runs `digest run` and
`digest status`: each ends with its normal output or one clear line, never a
traceback, and nobody is mailed twice.
"""

from __future__ import annotations

import marshal
import os
import shutil
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_digest
from digest.release import idle

NOW = "2026-11-22T12:00:00+08:00"
SHAPES = [b"[]", b'"x"', b"null", b"42", b"{}", b"\xff\xfe\x00garbage", b'{"version": 1, "issues": {"a', b""]
ISSUES_SHAPES = [
    b'{"version": 1}',
    b'{"version": 1, "initialized": 5, "issues": {}}',
    b'{"version": 1, "initialized": "%s", "issues": {"2026-11-01": []}}' % NOW.encode(),
    b'{"version": 1, "initialized": "%s", "issues": {"2026-11-01": {"hash": "x", "first_seen": "nope",'
    b' "changed_at": "nope"}}}' % NOW.encode(),
    b'{"version": 1, "initialized": "%s", "issues": {"2026-11-01": {"hash": "x", "first_seen":'
    b' "2026-11-22T12:00:00", "changed_at": "2026-11-22T12:00:00"}}}' % NOW.encode(),
    b'{"version": 1, "initialized": "%s", "issues": {"2026-11-01": {"hash": "x", "first_seen": "%s",'
    b' "changed_at": "%s", "approval": {"hash": 5}}}}' % (NOW.encode(), NOW.encode(), NOW.encode()),
    b'{"version": 1, "initialized": "%s", "issues": {"2026-11-01": {"hash": "x", "first_seen": "%s",'
    b' "changed_at": "%s", "approval": "yes"}}}' % (NOW.encode(), NOW.encode(), NOW.encode()),
]
FEEDS_SHAPES = [
    b'{"entries": []}',
    b'{"entries": {"k": 5}}',
    b'{"entries": {"k": {"digest": "d", "updated": "garbage"}}}',
    b'{"entries": {"k": {"digest": "d", "updated": "2026-11-01T00:00:00"}}}',
]
LEDGER_LINES = [
    b"[1, 2]",
    b'{"to": 5, "status": "sent"}',
    b'{"start_round": "x"}',
    b'{"start_round": null}',
    b'{"finished_round": null, "counts": 5}',
    b'{"finished_round": "one", "counts": {"sent": 3}, "shards": {}}',
    b'{"finished_round": 1, "counts": {"sent": "x"}, "shards": []}',
    b'{"to": "a@example.com", "status": "sent", "round": "two"}',
    b'{"to": "a@example.com", "status": "failed", "code": "550", "at": 5}',
    b'{"to": ["a"], "status": {"x": 1}, "round": 1.5}',
    b"\xff\xfe garbage",
]
DIRECTORY = None  # the file replaced by a directory


def cases():
    for shape in SHAPES + ISSUES_SHAPES + [DIRECTORY]:
        yield "issues.json", shape
    for shape in SHAPES + FEEDS_SHAPES + [DIRECTORY]:
        yield "feeds.json", shape
    for line in LEDGER_LINES:
        yield "ledger line", line
    for name in ("2026-11-01.jsonl", "2026-11-01.1.jsonl", "2026-11-01.paused", "2026-11-01.held"):
        for shape in (b"[]\n", b"\xff\xfe\n", DIRECTORY):
            yield f"ledger/{name}", shape
    for shape in (b"", b"garbage", DIRECTORY):
        for lock in ("run.lock", "state.lock", "ledger/2026-11-01.lock"):
            yield lock, shape
    for shape in [*SNAPSHOTS, DIRECTORY]:
        yield "idle snapshot", shape


def snapshot(**fields):
    data = {"version": idle.SNAPSHOT_VERSION, "python": sys.version, "pending": False, "wake_at": None}
    data.update(fields)
    return marshal.dumps(data)


SNAPSHOTS = [
    b"garbage",
    marshal.dumps([1, 2]),
    snapshot(paths=["x"], inputs={}),
    snapshot(paths={"issues": 5, "state": None}, inputs={}),
    snapshot(paths={"issues": "/nonexistent", "state": "/nonexistent"}, inputs={}, wake_at="soon"),
    snapshot(paths={"issues": "/nonexistent", "state": "/nonexistent"}, inputs=[], pending="no"),
]


@pytest.fixture(scope="module")
def mailed_once(tmp_path_factory):
    """The bundled example after its first run: 2026-11-01 mailed to three subscribers."""
    root = tmp_path_factory.mktemp("bundled") / "site"
    root.mkdir()
    shutil.copy(ROOT / "digest.toml", root / "digest.toml")
    shutil.copytree(ROOT / "examples", root / "examples")
    (root / "feeds").mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(root.parent / "cache")}
    env.pop("DIGEST_CONFIG", None)
    first = run_digest(["run"], env, cwd=root)
    assert "sent 2026-11-01: sent 3" in first.stdout, first.stdout + first.stderr
    return root


def damage(path: Path, shape: bytes | None, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() and not append:
        path.unlink()
    if shape is DIRECTORY:
        path.mkdir()
    elif append:
        with path.open("ab") as handle:
            handle.write(shape + b"\n")
    else:
        path.write_bytes(shape)


def mail_count(root: Path) -> int:
    return len(list((root / "var" / "maildir" / "new").iterdir()))


@pytest.mark.parametrize(("what", "shape"), list(cases()))
def test_no_state_file_of_any_shape_is_an_internal_error(
    mailed_once, tmp_path, run_env, monkeypatch, what, shape
):
    shutil.copytree(mailed_once, tmp_path, dirs_exist_ok=True)
    state = tmp_path / "var" / "state"
    if what == "idle snapshot":
        monkeypatch.setenv("XDG_CACHE_HOME", run_env["XDG_CACHE_HOME"])
        damage(Path(idle.snapshot_path(str(tmp_path / "digest.toml"))), shape)
    elif what == "ledger line":
        damage(state / "ledger" / "2026-11-01.jsonl", shape, append=True)
    else:
        damage(state / what, shape)
    for command in (["run"], ["status"]):
        result = run_digest(command, run_env, cwd=tmp_path)
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.returncode in (0, 1), result.stderr
        if result.returncode:
            lines = result.stderr.strip().splitlines() or result.stdout.strip().splitlines()
            assert len(lines) == 1, result.stdout + result.stderr
    assert mail_count(tmp_path) == 3  # nobody mailed twice


@pytest.mark.parametrize("shape", [b"{", b"[]", b'{"entries": []}', b'{"entries": {"k": {"digest": 1}}}'])
def test_a_corrupt_feed_state_is_set_aside_and_the_run_goes_on(tmp_path, run_env, shape):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "digest.toml", tmp_path / "digest.toml")
    (tmp_path / "feeds").mkdir()
    state = tmp_path / "var" / "state"
    state.mkdir(parents=True)
    (state / "feeds.json").write_bytes(shape)
    result = run_digest(["run"], run_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert (
        len(warnings) == 1
        and "feeds.json" in warnings[0]
        and "set aside as feeds.json.corrupt-" in warnings[0]
    )
    assert "sent 2026-11-01: sent 3" in result.stdout  # released issues are mailed all the same
    aside = list(state.glob("feeds.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == shape
    assert (state / "feeds.json").read_bytes().startswith(b"{") and (tmp_path / "feeds" / "atom.xml").exists()
    again = run_digest(["run"], run_env, cwd=tmp_path)
    assert "warning" not in again.stdout
