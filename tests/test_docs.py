"""The documentation cannot drift from the code: it builds strictly, its reference is generated,
its tutorial runs as written, and every config snippet in it is a config digest accepts."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, digest_cmd
from digest.config import config_from_mapping
from digest.errors import ConfigError

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
TUTORIAL = DOCS / "tutorial.md"
SKIP = re.compile(r"<!-- tutorial: not run[^>]*-->\n")


def fenced(text: str, language: str) -> list[tuple[bool, str]]:
    """(runnable, body) of every ```language block; a block right after a not-run mark is not runnable."""
    blocks = re.finditer(rf"(<!-- tutorial: not run[^>]*-->\n)?[ ]*```{language}\n(.*?)```", text, re.S)
    return [(match[1] is None, re.sub(r"(?m)^    ", "", match[2])) for match in blocks]


def test_the_reference_pages_are_what_the_code_generates():
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "reference.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_every_config_key_and_lint_code_is_explained():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import reference
    finally:
        sys.path.remove(str(ROOT / "tools"))
    keys = {key for key, _, _ in reference.config_keys()}
    assert keys - set(reference.KEY_NOTES) == set()
    assert set(reference.lint_codes()) - set(reference.LINT_NOTES) == set()
    assert {"no-date", "unknown-section", "outside-issues", "unreadable"} <= set(reference.lint_codes())


def test_the_site_builds_with_mkdocs_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()
    assert "digest init" in (tmp_path / "site" / "reference" / "commands" / "index.html").read_text()


def test_the_tutorial_runs_as_written(tmp_path):
    """Every command of the tutorial, in order, in an empty folder: each succeeds, and the digest arrives."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "digest").write_text("#!/bin/sh\nexec " + " ".join(digest_cmd()) + ' "$@"\n')
    (bin_dir / "digest").chmod(0o755)
    blocks = fenced(TUTORIAL.read_text(encoding="utf-8"), "sh")
    assert len([b for b in blocks if not b[0]]) == 2  # install (network) and --serve (runs until Ctrl-C)
    script = "set -euo pipefail\n" + "\n".join(body for runnable, body in blocks if runnable)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    env.pop("DIGEST_CONFIG", None)
    env.pop("DIGEST_SECRET", None)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    site = tmp_path / "field-notes"
    assert "sent 2026-12-01: sent 1, failed 0" in done.stdout
    mailed = list((site / "var" / "maildir" / "new").iterdir())
    assert len(mailed) == 1 and "To: A Reader <reader@example.com>" in mailed[0].read_text()
    again = subprocess.run([*digest_cmd(), "run"], cwd=site, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and len(list((site / "var" / "maildir" / "new").iterdir())) == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_config_snippet_is_a_config_digest_accepts(page, tmp_path):
    for _, body in fenced(page.read_text(encoding="utf-8"), "toml"):
        if body.lstrip().startswith("[email.dkim]"):
            continue
        try:
            config_from_mapping(tomllib.loads(body), tmp_path / "digest.toml")
        except ConfigError as exc:  # a folder the snippet names exists on the reader's disk, not here
            if "is not a folder" not in str(exc):
                raise


def test_no_page_installs_from_an_index_digest_was_never_published_on():
    for page in [*PAGES, ROOT / "README.md"]:
        text = page.read_text(encoding="utf-8")
        assert not re.search(
            r"(pip|pipx|uv tool) install ['\"]?digest-newsletter(\[\w+\])?(?!\s*@)['\"]?(\s|$)", text
        ), page


def test_the_troubleshooting_page_quotes_messages_digest_really_prints():
    page = (DOCS / "how-to" / "troubleshooting.md").read_text(encoding="utf-8")
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "digest").rglob("*.py"))
    quoted = [
        "run `digest init` to write one from your issues",
        "digest init never overwrites a file",
        "'site.base_url' is not set: feed ids and links are built from it",
        "is not in [feeds.sections]; its feed slug is",
        "unknown section",
        "choose another with",
        "is busy in another digest process; try again when it ends",
        "the signing key is readable by group or others",
        "no message catalog for language",
        "'email.transport' must not hold credentials",
        "internal error: ",
    ]
    for text in quoted:
        assert text in page, text
        assert text in source, text
