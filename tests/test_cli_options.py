"""Command-line habits: global options anywhere, -v/-q, --json, completion, logging, ports and exit codes."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess

import pytest

from conftest import ROOT, digest_cmd, run_digest
from digest.cli import EXIT_CODES, build_parser


@pytest.fixture
def example(tmp_path):
    """The bundled example newsletter in a folder of its own."""
    shutil.copy(ROOT / "digest.toml", tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "CONFIG", "status"],
        ["status", "--config", "CONFIG"],
        ["--config=CONFIG", "-q", "run"],
        ["-q", "run", "--config", "CONFIG"],
        ["--config", "CONFIG", "subscribers", "list"],
        ["subscribers", "list", "--config", "CONFIG"],
    ],
)
def test_global_options_stand_before_or_after_the_command(args, example, run_env, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no digest.toml here: only --config finds it
    config = str(example / "digest.toml")
    done = run_digest([a.replace("CONFIG", config) for a in args], run_env, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "no digest.toml" not in done.stderr


def test_quiet_run_says_nothing_when_there_is_nothing_to_do(example, run_env):
    assert run_digest(["run"], run_env, cwd=example).returncode == 0
    for args in (["-q", "run"], ["run", "-q"], ["run", "--quiet"]):
        done = run_digest(args, run_env, cwd=example)
        assert (done.returncode, done.stdout) == (0, ""), args


def test_status_and_the_list_speak_json(example, run_env):
    status = run_digest(["status", "--json"], run_env, cwd=example)
    records = [json.loads(line) for line in status.stdout.splitlines()]
    assert {r["issue"] for r in records} >= {"2026-11-01", "drafts/2026-11-15"}
    first = next(r for r in records if r["issue"] == "2026-11-01")
    assert first["lint"] == {"fatal": 0, "error": 0, "warning": 0} and first["total"] == 3
    listing = run_digest(["subscribers", "list", "--json", "--status", "all"], run_env, cwd=example)
    people = [json.loads(line) for line in listing.stdout.splitlines()]
    assert {"email", "name", "sections", "status", "since"} == set(people[0])
    assert any(p["sections"] == ["papers", "projects"] for p in people)


def test_completion_scripts_name_every_command(run_env):
    commands = {"init", "run", "status", "subscribers", "serve", "completion"}
    for shell in ("bash", "zsh"):
        done = run_digest(["completion", shell], run_env)
        assert done.returncode == 0 and all(name in done.stdout for name in commands), shell


def test_the_missing_config_error_says_to_run_init(run_env, tmp_path):
    done = run_digest(["run"], run_env, cwd=tmp_path)
    assert done.returncode == 1
    assert "run `digest init`" in done.stderr and done.stderr.count("\n") == 1


def test_a_port_in_use_names_the_port_and_the_key(example, run_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (example / "digest.toml").write_text(
            (example / "digest.toml").read_text(encoding="utf-8") + f"\n[serve]\nport = {port}\n",
            encoding="utf-8",
        )
        done = run_digest(["serve"], run_env, cwd=example)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "--port or [serve] port in " in done.stderr and "Traceback" not in done.stderr


def test_the_server_port_is_clear_of_common_local_tools():
    serve = next(
        a for a in build_parser()._subparsers._group_actions[0].choices["serve"]._actions if a.dest == "port"
    )
    default = int(re.search(r"(\d+)\)", serve.help)[1])
    assert default not in (25, 1025, 3000, 5000, 8000, 8025, 8080, 8888, 9000)


def test_exit_codes_are_documented_with_the_ones_the_code_uses():
    from digest.errors import LockBusy

    assert {0, 1, 2, 70, 75, 130} <= set(EXIT_CODES)
    assert LockBusy.exit_code in EXIT_CODES
    cli = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "digest" / "cli").glob("*.py"))
    used = {int(n) for n in re.findall(r"return (\d+)\b", cli)} | {
        int(n) for n in re.findall(r"else (\d+)", cli)
    }
    assert used <= set(EXIT_CODES)


def test_watch_logs_each_pass_with_its_time_and_level(example, run_env):
    watch = subprocess.Popen(
        [*digest_cmd(), "watch", "--interval", "3600"],
        cwd=example,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [watch.stderr.readline() for _ in range(2)]  # the start, then the first pass's first line
    finally:
        watch.terminate()
        watch.communicate(timeout=30)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    assert re.match(rf"{stamp} INFO digest: watching .*examples/issues every 3600s", lines[0]), lines
    assert re.match(rf"{stamp} INFO digest: feeds: ", lines[1]), lines


def test_serve_logs_every_request_with_its_time_and_level(example, run_env):
    import urllib.request

    serve = subprocess.Popen(
        [*digest_cmd(), "serve", "--port", "0"],
        cwd=example,
        env={**run_env, "DIGEST_SECRET": "s" * 43},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = serve.stderr.readline()
        url = re.search(r"at (http://\S+) ", started)[1]
        urllib.request.urlopen(f"{url}subscribe?token=secret-looking", timeout=30).read()
        lines = [serve.stderr.readline()]
        while "GET /subscribe" not in lines[-1] and len(lines) < 10:  # past any note of the list's index
            lines.append(serve.stderr.readline())
        request = lines[-1]
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    assert re.match(rf"{stamp} INFO digest: serving unsubscribe", started), started
    assert re.match(rf"{stamp} INFO digest.serve: 127.0.0.1 GET /subscribe 200$", request.strip()), request


def test_a_section_choice_without_any_sections_says_where_they_are_named(run_env, tmp_path):
    (tmp_path / "digest.toml").write_text("[site]\ntitle = 'Weekly'\n", encoding="utf-8")
    (tmp_path / "subscribers.csv").write_text("email,name,sections,status,since\n", encoding="utf-8")
    done = run_digest(
        ["subscribers", "add", "a@example.com", "--sections", "articles"], run_env, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr == (
        "digest: unknown section 'articles' (known: none: name them in [feeds.sections])\n"
    )
