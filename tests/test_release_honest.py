"""Nothing that looks like success: a config that would drop List-Unsubscribe, a transport that
mails nobody, a preview that contradicts `digest status`, a lint that passes what status counts,
and a malformed URL key."""

from __future__ import annotations

import os

import pytest
from test_release import EVERYONE, MAILDIR, NOW, configure, delivered, write

from conftest import run_digest
from digest.newsletter.catalog import load_issue
from digest.pipeline import run_once
from digest.web.preview import render_preview


def _one_line_error(result, key: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digest: ") and f"'{key}'" in lines[0], result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_an_http_base_url_that_would_drop_list_unsubscribe_is_an_error_naming_the_key(site, run_env):
    site.write_config(
        '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n'
        'base_url = "http://news.example.org/digest/"\n'
    )
    _one_line_error(run_digest(["status", "--config", str(site.config_path)], run_env), "email.base_url")
    site.write_config(  # with an https unsubscribe_url the one-click link no longer comes from base_url
        '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n'
        'base_url = "http://news.example.org/digest/"\nunsubscribe_url = "https://news.example.org/u"\n'
    )
    assert run_digest(["status", "--config", str(site.config_path)], run_env).returncode == 0


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("site", "base_url", "https://[::1/news/"),
        ("email", "unsubscribe_url", "https://[2001:db8::1/unsubscribe"),
        ("email", "base_url", "https://news.example.org:port/"),
        ("bounces", "mailbox", "imaps://bounces@[::1/INBOX"),
    ],
)
def test_a_malformed_url_key_is_one_line_naming_it(site, run_env, table, key, value):
    text = site.config_path.read_text(encoding="utf-8")
    if table == "site":
        text = text.replace('base_url = "https://news.example.org/"', f'base_url = "{value}"')
    else:
        text += f'[{table}]\n{key} = "{value}"\n'
        if table == "email":
            text += 'from = "a@news.example.org"\n'
    site.config_path.write_text(text, encoding="utf-8")
    for command in (["status"], ["run"], ["feeds"]):
        _one_line_error(run_digest([*command, "--config", str(site.config_path)], run_env), f"{table}.{key}")


def test_the_maildir_transport_says_in_every_line_that_nobody_was_mailed(site, run_env):
    configure(site, since="2026-01-01")
    write(site, "2026-11-20")
    run = run_once(site.config, NOW)
    sent = [line for line in run.lines if line.startswith("sent ")]
    assert sent and all("into the Maildir" in line and "nobody was mailed" in line for line in sent), (
        run.lines
    )
    write(site, "2026-11-21")
    config = ["--config", str(site.config_path)]
    send = run_digest(["send", "2026-11-21", "--no-progress", *config], run_env)
    assert send.returncode == 0, send.stderr
    assert send.stdout and [x for x in send.stdout.splitlines() if "nobody was mailed" not in x] == []
    copy = run_digest(["preview", "2026-11-21", "--to", "editor@example.com", *config], run_env)
    assert "test copy sent to editor@example.com" in copy.stdout
    assert "nobody was mailed" in copy.stdout.splitlines()[-1]
    assert delivered(site) == sorted([*EVERYONE, *EVERYONE, "editor@example.com"])


def test_the_preview_of_a_mailed_issue_says_it_was_mailed_as_status_does(site, run_env):
    configure(site, mode="manual", since="2026-01-01")
    write(site, "2026-11-20")
    config = ["--config", str(site.config_path)]
    assert run_digest(["approve", "2026-11-20", *config], run_env).returncode == 0
    assert run_digest(["run", *config], run_env).returncode == 0
    status = run_digest(["status", *config], run_env).stdout
    assert "mailed" in next(line for line in status.splitlines() if line.startswith("2026-11-20"))
    preview = render_preview(site.config, load_issue(site.config, "2026-11-20"), NOW)
    assert preview.decision == "已寄出：成功 3，失败 0"  # "Already mailed: sent 3, failed 0"


def test_lint_reports_every_finding_status_counts(site, run_env, tmp_path):
    site.write_config(MAILDIR.replace("[email]\n", "[email]\nmax_html_bytes = 8000\n"))
    write(site, "2026-11-20")
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# 简报 (2026-11-19)：外面\n## 论文\n- [a | b](https://a.org)\n摘要：x。\n", "utf-8")
    os.symlink(outside, site.issues / "2026-11-19.md")
    config = ["--config", str(site.config_path)]
    status = run_digest(["status", *config], run_env).stdout
    assert "1/0/0" in status and "0/1/0" in status  # status counts the symlink fatal and the size error
    lint = run_digest(["lint", *config], run_env)
    assert lint.returncode == 1
    assert "致命 outside-issues: 是指向" in lint.stdout and "[paths] issues 之外" in lint.stdout
    assert "超过 [email] max_html_bytes = 8,000" in lint.stdout
    one = run_digest(["lint", str(site.issues / "2026-11-20.md"), *config], run_env)
    assert (
        one.returncode == 1
        and "错误 digest-too-large" in one.stdout
        and "max_html_bytes = 8,000" in one.stdout
    )


def test_the_preview_of_an_approved_or_held_issue_says_what_status_says(site, run_env):
    configure(site, mode="manual", since="2026-01-01")
    write(site, "2026-11-20")
    config = ["--config", str(site.config_path)]

    def decision():
        return render_preview(site.config, load_issue(site.config, "2026-11-20"), NOW).decision

    assert decision() == "批准后寄出"  # "once approved": not yet seen by status, the rules on the file alone
    assert run_digest(["approve", "2026-11-20", *config], run_env).returncode == 0
    assert decision() == "将寄出：approved"
    assert run_digest(["hold", "2026-11-20", *config], run_env).returncode == 0
    assert decision().startswith("不会寄出：held")
    status = run_digest(["status", *config], run_env).stdout
    assert "held" in next(line for line in status.splitlines() if line.startswith("2026-11-20"))
