"""Edge cases of the input files (issue 11, items 13 and 14): too large to mail, too large to read,
links out of the issues folder, FIFOs and devices."""

from __future__ import annotations

import os
import threading

import pytest
from test_release import EVERYONE, ISSUE, NOW, configure, delivered, feed_entries, write

from conftest import run_digest
from digest.pipeline import run_once


def _small_budget(site, budget: int) -> None:
    configure(site, since="2026-01-01")
    text = site.config_path.read_text(encoding="utf-8").replace(
        "[release]", f"max_html_bytes = {budget}\n[release]"
    )
    site.config_path.write_text(text, encoding="utf-8")


def test_a_digest_still_too_large_after_every_shortening_is_not_mailed_automatically(site, run_env):
    """It was mailed, clipped by Gmail (and its unsubscribe link with it)."""
    _small_budget(site, 8000)
    write(site, "2026-11-20")
    report = run_once(site.config, NOW)
    assert delivered(site) == []
    assert "2026-11-20: not mailed: lint errors: fix them (or digest approve --force)" in report.lines
    assert len(feed_entries(site)) == 1  # the feeds still carry it
    status = run_digest(["status", "--config", str(site.config_path)], run_env)
    assert "0/1/0" in status.stdout  # one lint error
    refused = run_digest(["send", "2026-11-20", "--config", str(site.config_path)], run_env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "bytes with every summary shortened, over [email] max_html_bytes = 8,000" in refused.stderr
    forced = run_digest(["send", "2026-11-20", "--force", "--config", str(site.config_path)], run_env)
    assert forced.returncode == 0, forced.stderr
    assert delivered(site) == EVERYONE  # the editor can still mail it on purpose


def test_a_digest_that_fits_once_shortened_is_mailed(site):
    _small_budget(site, 100_000)
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE


def test_a_twenty_megabyte_issue_file_is_refused_with_one_line(site, run_env):
    path = site.issues / "2026-11-20.md"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(ISSUE.format(date="2026-11-20", headline="大"))
        handle.write(("- [x](https://a.org/x)\n摘要：" + "长" * 300 + "\n") * 22_000)
    assert path.stat().st_size > 20_000_000
    result = run_digest(["parse", str(path)], run_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"digest: {path}: is {path.stat().st_size / 1e6:.1f} MB; an issue file may be " \
        "at most 2 MB (is this really an issue?)\n"  # fmt: skip
    configure(site, since="2026-01-01")
    run_once(site.config, NOW)
    assert delivered(site) == [] and feed_entries(site) == []


def test_a_symlink_out_of_the_issues_folder_is_not_published(site, tmp_path, run_env):
    configure(site, since="2026-01-01")
    secret = tmp_path / "elsewhere" / "2026-11-20.md"
    secret.parent.mkdir()
    secret.write_text(ISSUE.format(date="2026-11-20", headline="外面的文件"), encoding="utf-8")
    (site.issues / "2026-11-20.md").symlink_to(secret)
    (site.issues / "2026-11-21.md").symlink_to("/etc/passwd")
    write(site, "2026-11-19")
    run_once(site.config, NOW)
    titles = [entry.title for entry in feed_entries(site)]
    assert titles == ["简报 (2026-11-19)：新一期"]
    assert "外面的文件" not in (site.config.paths.feeds / "atom.xml").read_text(encoding="utf-8")
    assert delivered(site) == EVERYONE  # 2026-11-19 only
    status = run_digest(["status", "--config", str(site.config_path)], run_env)
    assert "2026-11-20" in status.stdout and "not an issue yet" in status.stdout
    refused = run_digest(["send", "2026-11-20", "--config", str(site.config_path)], run_env)
    assert refused.returncode == 1
    assert f"is a symlink to {secret}, outside [paths] issues: it is neither fed nor mailed" in refused.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_parse_of_a_fifo_or_device_refuses_at_once(tmp_path, run_env, kind):
    """`digest parse` of a FIFO waited forever for a writer."""
    if kind == "fifo":
        path = tmp_path / "2026-11-20.md"
        os.mkfifo(path)
        expected = "is a FIFO, not an issue file"
    else:
        path, expected = "/dev/zero", "is a device or socket, not an issue file"
    finished = threading.Event()
    results = []

    def parse():
        results.append(run_digest(["parse", str(path)], run_env))
        finished.set()

    threading.Thread(target=parse, daemon=True).start()
    if not finished.wait(20):
        with open(path, "wb"):  # let the old code's read end, so the test fails instead of hanging
            pass
        pytest.fail("digest parse waited on the FIFO")
    assert results[0].returncode == 1 and results[0].stderr == f"digest: {path}: {expected}\n"
