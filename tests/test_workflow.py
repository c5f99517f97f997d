"""The GitHub Actions workflow in cron/: valid by the workflow schema, and its shell steps work as written.

The steps that are ours (not actions from the marketplace) are run here with bash,
in a newsletter repository made by `digest init`, with the variables GitHub sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, digest_cmd

WORKFLOW = ROOT / "cron" / "github-actions.yml"
ISSUE = """\
---
title: "Field Notes #{n}"
date: 2026-11-{day:02d}
---

## News

- [A release](https://example.net/release-{n}): what changed.
- [A link with no target]()
"""


def steps(job: str) -> dict[str, str]:
    """The named shell steps of a job: name -> script."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return {step["name"]: step["run"] for step in workflow["jobs"][job]["steps"] if "run" in step}


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As GitHub runs a step: bash -e, in the checkout."""
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "digest").write_text("#!/bin/sh\nexec " + " ".join(digest_cmd()) + ' "$@"\n')
    (bin_dir / "digest").chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GIT_AUTHOR_NAME": "Editor",
        "GIT_AUTHOR_EMAIL": "editor@example.org",
        "GIT_COMMITTER_NAME": "Editor",
        "GIT_COMMITTER_EMAIL": "editor@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "DIGEST_SECRET": "s" * 43,
    }


@pytest.fixture
def repo(tmp_path, env) -> Path:
    """A newsletter started with `digest init`, committed on main, with a bare origin to push to."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, env=env)
    work.mkdir()
    (work / "issues").mkdir()
    (work / "issues" / "2026-11-02.md").write_text(ISSUE.format(n=1, day=2), encoding="utf-8")
    done = subprocess.run(
        [*digest_cmd(), "init", "--base-url", "https://notes.example.net/"], cwd=work, env=env
    )
    assert done.returncode == 0
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    subprocess.run(["git", "remote", "add", "origin", str(origin)], cwd=work, check=True, env=env)
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, check=True, env=env)
    return work


def test_the_workflow_is_valid_by_the_github_workflow_schema():
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which(
        "check-jsonschema"
    )
    if checker is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflow_installs_from_the_repository_and_never_publishes_pages():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "git+https://github.com/digest-newsletter/digest" in text
    assert "deploy-pages" not in text and "pages: write" not in text


def test_a_pull_request_gets_lint_findings_in_the_summary_and_the_email_as_files(repo, env):
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "new-issue")
    (repo / "issues" / "2026-11-09.md").write_text(ISSUE.format(n=2, day=9), encoding="utf-8")
    (repo / "README.md").write_text("# Field Notes\n\nA newsletter.\n", encoding="utf-8")  # not an issue
    git(repo, "add", "-A")
    subprocess.run(["git", "commit", "-qm", "issue 2"], cwd=repo, check=True, env=env)
    done = bash(steps("preview")["Lint and preview the changed issues"], repo, {**env, "BASE_SHA": base})
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert "### `issues/2026-11-09.md`" in summary and "2026-11-02" not in summary  # the changed file only
    assert "README" not in summary
    assert "issues/2026-11-09.md:9: error empty-link-target" in summary  # the finding, with its line
    assert done.returncode == 1  # a lint error fails the check
    assert (repo / "var" / "previews" / "2026-11-09" / "email.html").is_file()  # the artifact's content


def test_a_run_commits_the_state_and_the_list_with_its_journal(repo, env, tmp_path):
    assert bash("digest run && digest subscribers add reader@example.org", repo, env).returncode == 0
    done = bash(steps("run")["Keep what digest changed"], repo, env)
    assert done.returncode == 0, done.stderr
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tmp_path / "origin.git"), str(clone)], check=True, env=env)
    kept = set(git(clone, "ls-files").split())
    assert "reader@example.org" in (clone / "subscribers.csv").read_text() + (
        (clone / ".subscribers.csv.journal").read_text()
        if (clone / ".subscribers.csv.journal").exists()
        else ""
    )
    assert any(name.startswith("state/") for name in kept)
    assert not any(name.endswith((".lock", ".index")) or name.startswith(("var/", "feeds/")) for name in kept)
    assert "state/secret.key" not in kept
