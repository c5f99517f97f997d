"""``digest parse`` and ``digest lint`` as a user runs them: real subprocesses, real files."""

from __future__ import annotations

import json

from conftest import ROOT, run_digest


def test_parse_json_prints_one_object_per_file_in_order(run_env, tmp_path):
    good = tmp_path / "2024-03-01.md"
    good.write_text(
        "# 简报 (2024-03-01)：题\n## 论文\n- [T | S](https://a.org)\n摘要：一。\n", encoding="utf-8"
    )
    empty = tmp_path / "draft.md"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.md"
    result = run_digest(
        ["parse", "--json", str(good), str(empty), str(missing), str(good)], run_env, cwd=tmp_path
    )
    assert result.returncode == 1
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["path"] for o in objects] == [str(good), str(good)]
    first = objects[0]
    assert {"path", "date", "title", "headline", "tagline", "intro", "warmup", "sections", "warnings"} <= set(
        first
    )
    assert first["date"] == "2024-03-01" and first["headline"] == "题"
    item = first["sections"][0]["items"][0]
    assert item == {
        **item,
        "title": "T",
        "source": "S",
        "url": "https://a.org",
        "labels": [],
        "summary": "一。",
        "links": [],
    }
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"digest: {empty}") and "no date" in errors[0]
    assert errors[1].startswith(f"digest: {missing}") and "cannot read" in errors[1]
    assert "Traceback" not in result.stderr


def test_lint_defaults_to_every_issue_of_the_config(run_env):
    result = run_digest(["lint"], run_env)
    assert "Traceback" not in result.stderr
    assert "个文件：" in result.stderr  # the bundled example is a Chinese newsletter: its lint speaks Chinese
    assert result.returncode == 0, result.stdout  # the bundled examples are publishable


def test_lint_reports_file_line_code_and_severity_and_exits_1(run_env, tmp_path):
    draft = tmp_path / "2024-05-01.md"
    draft.write_text("# 简报 (2024-05-01)：<标题>\n\n- 三星：\n\n## 论文\n- [a | b]()\n", encoding="utf-8")
    result = run_digest(["lint", str(draft)], run_env, cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    title = "简报 (2024-05-01)：<标题>"
    assert f"{draft}:1: fatal placeholder-title: the title still has placeholder text: '{title}'" in lines
    assert any(line.startswith(f"{draft}:3: error empty-warmup-entry") for line in lines)
    assert any(line.startswith(f"{draft}:6: error empty-link-target") for line in lines)


def test_lint_exit_0_with_only_warnings(run_env, tmp_path):
    issue = tmp_path / "2024-05-01.md"
    issue.write_text("# 简报 (2024-05-01)：题\n## 论文\n- [a](https://a.org)\n## 博文\n", encoding="utf-8")
    result = run_digest(["lint", str(issue)], run_env, cwd=tmp_path)
    assert result.returncode == 0
    assert "warning empty-section" in result.stdout


def test_invalid_config_is_one_line_and_nothing_runs(run_env, tmp_path):
    config = tmp_path / "digest.toml"
    config.write_text("[feeds]\nlimit = 'x'\n", encoding="utf-8")
    result = run_digest(["lint", "--config", str(config)], run_env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == f"digest: {config}: 'feeds.limit' must be an integer, not a string"


def test_every_command_has_help_with_an_example(run_env):
    top = run_digest(["--help"], run_env)
    assert top.returncode == 0
    commands = [
        line.split()[0]
        for line in top.stdout.split("commands:")[1].splitlines()[2:]
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert {"parse", "lint"} <= set(commands)
    for command in commands:
        result = run_digest([command, "--help"], run_env)
        assert result.returncode == 0
        assert "example:" in result.stdout, command


def test_bad_arguments_are_one_clear_line(run_env, tmp_path):
    import shutil

    shutil.copy(ROOT / "digest.toml", tmp_path)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    outside = tmp_path / "2026-11-09.md"
    outside.write_text("# 简报 (2026-11-09)：x\n## 论文\n- [a](https://a.org)\n", encoding="utf-8")
    cases = [
        (["approve", str(outside)], "is not in [paths] issues"),
        (["subscribers", "import", str(tmp_path / "nope.csv")], "no such file to import"),
        (["preview", "1999-01-01"], "no issue '1999-01-01'"),
        (["serve", "--host", "256.1.1.1", "--port", "0"], "cannot listen on 256.1.1.1:0"),
    ]
    for args, needle in cases:
        result = run_digest(args, run_env, cwd=tmp_path)
        assert result.returncode == 1, args
        assert result.stderr.count("\n") == 1 and needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    for args in (["watch", "--interval", "-1"], ["serve", "--port", "99999"]):
        result = run_digest(args, run_env, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
    by_name = run_digest(["preview", "2026-11-01.md"], run_env, cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr


def test_a_missing_list_and_a_state_path_that_is_a_file_are_clear_errors(run_env, tmp_path):
    (tmp_path / "issues").mkdir()
    (tmp_path / "state").write_text("not a directory", encoding="utf-8")
    (tmp_path / "digest.toml").write_text('[paths]\nissues = "issues"\nstate = "state"\n', encoding="utf-8")
    listed = run_digest(["subscribers", "list"], run_env, cwd=tmp_path)
    assert listed.returncode == 1 and "there is no subscriber list here yet" in listed.stderr
    ran = run_digest(["run"], run_env, cwd=tmp_path)
    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr + ran.stdout
    assert "check [paths] in the config" in ran.stdout + ran.stderr
