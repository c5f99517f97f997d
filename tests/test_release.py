"""The release workflow end to end: `digest run` over files as an editor writes them."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
import threading
import time

import feedparser
import pytest

from conftest import ROOT, digest_cmd, run_digest, smtp_config, write_subscribers
from digest.errors import ReleaseError
from digest.pipeline import run_once
from digest.release import idle
from digest.release.status import status_table
from digest.release.tracking import approve
from digest.send.ledger import Outcome, ledger_path
from digest.send.ledger_writer import LedgerWriter

TZ = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=TZ)
MAILDIR = '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n' \
    'unsubscribe_url = "https://news.example.org/unsubscribe"\n'  # fmt: skip

ISSUE = """\
# 简报 ({date})：{headline}

> 导读：本期两条。

## 论文

- [论文甲 | 某媒体](https://papers.example.org/{date}/a)
摘要：甲。

## 博文

- [博文乙 | 某博客](https://blog.example.org/{date}/b)
摘要：乙。
"""


def configure(site, mode="auto", since="", settle=0):
    release = f'[release]\nmode = "{mode}"\nsettle_minutes = {settle}\n' + (
        f"since = {since}\n" if since else ""
    )
    site.write_config(MAILDIR + release)
    write_subscribers(
        site.root / "subscribers.csv",
        [
            ("a@example.com", "甲", "", "active", ""),
            ("b@example.com", "乙", "papers", "active", ""),
            ("c@example.com", "丙", "", "active", ""),
            ("gone@example.com", "", "", "unsubscribed", ""),
        ],
    )


def delivered(site) -> list[str]:
    new = site.root / "maildir" / "new"
    if not new.exists():
        return []
    recipients = []
    for path in sorted(new.iterdir()):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("Delivered-To: "):
                recipients.append(line.split(": ", 1)[1])
                break
    return sorted(recipients)


def feed_entries(site):
    path = site.config.paths.feeds / "atom.xml"
    return feedparser.parse(path.read_bytes()).entries if path.exists() else []


def write(site, stem, headline="新一期", date=None, text=None):
    return site.write_issue(
        f"{stem}.md", text if text is not None else ISSUE.format(date=date or stem, headline=headline)
    )


EVERYONE = ["a@example.com", "b@example.com", "c@example.com"]


def test_empty_file_then_placeholder_draft_then_finished_issue(site):
    configure(site, since="2026-01-01")
    path = site.write_issue("2026-11-20.md", "")
    run_once(site.config, NOW)
    assert feed_entries(site) == [] and delivered(site) == []
    path.write_text("# 简报 (2026-11-20)：<标题><标题>\n## 论文\n- [a](https://a.org)\n", encoding="utf-8")
    run_once(site.config, NOW)
    assert feed_entries(site) == [] and delivered(site) == []
    write(site, "2026-11-20")
    report = run_once(site.config, NOW)
    assert [e.title for e in feed_entries(site)] == ["简报 (2026-11-20)：新一期"]
    assert delivered(site) == EVERYONE
    assert any(line.startswith("sent 2026-11-20: sent 3") for line in report.lines)


def test_auto_mode_holds_lint_errors_until_fixed(site):
    configure(site, since="2026-01-01")
    broken = ISSUE.format(date="2026-11-20", headline="x").replace(
        "(https://blog.example.org/2026-11-20/b)", "()"
    )
    site.write_issue("2026-11-20.md", broken)
    report = run_once(site.config, NOW)
    assert delivered(site) == []
    assert "2026-11-20: not mailed: lint errors: fix them (or digest approve --force)" in report.lines
    assert len(feed_entries(site)) == 1  # errors may be fed
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE


def test_auto_mode_waits_for_the_file_to_settle(site):
    configure(site, since="2026-01-01", settle=30)
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == []
    run_once(site.config, NOW + dt.timedelta(minutes=29))
    assert delivered(site) == []
    run_once(site.config, NOW + dt.timedelta(minutes=31))
    assert delivered(site) == EVERYONE


def test_manual_mode_approve_mail_once_and_edits_never_mail_again(site):
    configure(site, mode="manual", since="2026-01-01")
    write(site, "2026-11-20")
    report = run_once(site.config, NOW)
    assert delivered(site) == []
    assert "2026-11-20: not mailed: waiting for approval: digest approve 2026-11-20" in report.lines
    assert (site.config.paths.previews / "2026-11-20" / "email.html").exists()
    assert "approved" in approve(site.config, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE
    assert run_once(site.config, NOW).lines == ["nothing to do"]
    before = feed_entries(site)[0].updated
    write(site, "2026-11-20", headline="新一期（更正）")
    report = run_once(site.config, NOW + dt.timedelta(hours=1))
    assert delivered(site) == EVERYONE  # not mailed again
    assert feed_entries(site)[0].title == "简报 (2026-11-20)：新一期（更正）"
    assert feed_entries(site)[0].updated != before
    assert any(line.startswith("preview 2026-11-20") for line in report.lines)


def test_an_edit_after_approval_needs_approval_again_and_hold_takes_it_back(site):
    configure(site, mode="manual", since="2026-01-01")
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    approve(site.config, "2026-11-20")
    write(site, "2026-11-20", headline="改了")
    report = run_once(site.config, NOW)
    assert delivered(site) == []
    assert "2026-11-20: not mailed: changed since it was approved: digest approve it again" in report.lines
    approve(site.config, "2026-11-20")
    approve(site.config, "2026-11-20", hold=True)
    run_once(site.config, NOW)
    assert delivered(site) == []
    approve(site.config, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE


def test_approve_refuses_errors_without_force_and_fatal_always(site):
    configure(site, mode="manual", since="2026-01-01")
    site.write_issue("2026-11-20.md", "# 简报 (2026-11-20)：x\n## 论文\n- [a | b]()\n摘要：x。\n")
    site.write_issue("2026-11-21.md", "# 简报 (2026-11-21)：<标题>\n## 论文\n- [a](https://a.org)\n")
    with pytest.raises(ReleaseError, match="1 lint error"):
        approve(site.config, "2026-11-20")
    assert "despite lint errors" in approve(site.config, "2026-11-20", force=True)
    with pytest.raises(ReleaseError, match="not an issue yet"):
        approve(site.config, "2026-11-21", force=True)
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE


def test_history_is_not_news(site):
    configure(site)  # no [release] since: what is there at the first run is history
    site.copy_examples()
    report = run_once(site.config, NOW)
    assert len(feed_entries(site)) == 3
    assert delivered(site) == []
    assert not any(line.startswith("preview") for line in report.lines)
    write(site, "2026-03-01", headline="补录的旧一期")  # backfilled: dated before the first run
    run_once(site.config, NOW)
    assert delivered(site) == []
    write(site, "2026-11-22", headline="真正的新一期")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE
    assert "history" in status_table(site.config)


def test_since_moves_the_history_line(site):
    configure(site, since="2026-10-10")
    site.copy_examples()
    run_once(site.config, NOW)
    messages = sorted((site.root / "maildir" / "new").iterdir())
    subjects = {p.read_text(encoding="utf-8").split("Subject: ", 1)[1].split("\n", 1)[0] for p in messages}
    assert len(messages) == 2 * 3  # 10-15 and 11-01 to all three (both have papers, b@'s choice)
    assert len(subjects) == 2


def test_future_issue_is_neither_fed_nor_sent_until_its_date(site, monkeypatch):
    configure(site, since="2026-01-01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(site.root / "cache"))
    write(site, "2026-11-25")
    run_once(site.config, NOW)
    assert feed_entries(site) == [] and delivered(site) == []
    midnight = dt.datetime(2026, 11, 25, tzinfo=site.config.site.timezone)
    assert not idle.is_idle(str(site.config.path), midnight.timestamp())  # the snapshot wakes on the date
    run_once(site.config, midnight - dt.timedelta(minutes=1))
    assert delivered(site) == []
    run_once(site.config, midnight)
    assert len(feed_entries(site)) == 1
    assert delivered(site) == EVERYONE


@pytest.mark.parametrize("damage", ["corrupt", "missing", "wrong shape"])
def test_a_damaged_state_file_mails_nobody_again(site, damage):
    configure(site, since="2026-01-01")
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE
    state = site.config.paths.state / "issues.json"
    if damage == "corrupt":
        state.write_bytes(b'{"version": 1, "issues": {"2026-11-2')
    elif damage == "missing":
        state.unlink()
    else:
        state.write_text('{"version": 1, "issues": []}', encoding="utf-8")
    report = run_once(site.config, NOW + dt.timedelta(hours=1))
    assert delivered(site) == EVERYONE
    if damage != "missing":
        assert any("rebuilt" in line and "2026-11-20" in line for line in report.lines)
    write(site, "2026-11-21")
    run_once(site.config, NOW + dt.timedelta(hours=2))
    assert sorted(set(delivered(site))) == EVERYONE
    assert len(delivered(site)) == 6  # the new issue went out, the old one did not again


def test_an_interrupted_send_resumes_on_the_next_run(site):
    configure(site, since="2026-01-01")
    write(site, "2026-11-20")
    with LedgerWriter(ledger_path(site.config.paths.state, "2026-11-20")) as ledger:
        ledger._write(Outcome("a@example.com", "sent", 250, "<x@y>", at="2026-11-22T00:00:00").line())
    report = run_once(site.config, NOW)
    assert delivered(site) == ["b@example.com", "c@example.com"]
    assert any("1 already done" in line for line in report.lines)
    assert run_once(site.config, NOW).lines == ["nothing to do"]


def test_idle_snapshot_sees_changes(site, monkeypatch):
    configure(site, since="2026-01-01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(site.root / "cache"))
    write(site, "2026-11-20")
    run_once(site.config, NOW)
    config = str(site.config.path)
    assert not idle.is_idle(config, time.time())  # the first run changed the state it had stat'ed
    run_once(site.config, NOW)
    assert idle.is_idle(config, time.time())
    write(site, "2026-11-21")
    assert not idle.is_idle(config, time.time())
    run_once(site.config, NOW)
    run_once(site.config, NOW)
    assert idle.is_idle(config, time.time())
    site.config_path.write_text(site.config_path.read_text() + "\n", encoding="utf-8")
    assert not idle.is_idle(config, time.time())


def test_two_runs_at_once_make_one_sender(site, smtp, run_env):
    site.write_config(
        smtp_config(smtp.port, "concurrency = 1\n")
        + '[release]\nmode = "auto"\nsettle_minutes = 0\nsince = 2026-01-01\n'
    )
    write_subscribers(site.root / "subscribers.csv", [(a, "", "", "active", "") for a in EVERYONE])
    write(site, "2026-11-20")
    release = threading.Event()
    first_message = threading.Event()

    async def blocked(session, envelope):
        first_message.set()
        await asyncio.to_thread(release.wait, 60)  # hold the first sender mid-send until the second has tried

    smtp.before_data(blocked)
    command = [*digest_cmd(), "run", "--config", str(site.config_path)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env
    ) as first:
        try:
            assert first_message.wait(timeout=60)
            second = subprocess.run(command, capture_output=True, text=True, env=run_env, timeout=60)
            release.set()
            _, err = first.communicate(timeout=60)
        finally:
            release.set()  # a failed assertion above must not leave the first run blocked, or running
            if first.poll() is None:
                first.kill()
    assert second.returncode == 0
    assert second.stdout.strip() == "another digest run is in progress; this one exits (nothing done)"
    assert first.returncode == 0, err
    assert smtp.per_recipient() == dict.fromkeys(EVERYONE, 1)


def test_the_bundled_example_goes_out_on_the_first_run_and_the_second_does_nothing(tmp_path, run_env):
    shutil.copy(ROOT / "digest.toml", tmp_path / "digest.toml")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "feeds").mkdir()
    first = run_digest(["run"], run_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # 15 feed files, and the archive: 3 issue pages, their index, 5 section pages, the search and its index
    assert first.stdout.splitlines()[0].startswith("feeds: 6 feeds, 42 entries; 26 file(s) written")
    assert (tmp_path / "feeds" / "archive" / "2026-11-01.html").exists()
    assert "preview 2026-11-01: " in first.stdout
    assert "sent 2026-11-01: sent 3, failed 0, deferred 0" in first.stdout
    assert len(list((tmp_path / "var" / "maildir" / "new").iterdir())) == 3
    assert (tmp_path / "feeds" / "papers.atom.xml").exists()
    for _ in range(2):
        again = run_digest(["run"], run_env, cwd=tmp_path)
        assert again.stdout == "nothing to do\n" and again.returncode == 0
    assert len(list((tmp_path / "var" / "maildir" / "new").iterdir())) == 3


def test_renaming_a_mailed_issue_never_mails_it_again(site):
    configure(site, since="2026-01-01")
    path = write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE
    path.rename(site.issues / "2026-11-20-final.md")
    report = run_once(site.config, NOW + dt.timedelta(hours=1))
    assert delivered(site) == EVERYONE
    assert "sent" not in " ".join(report.lines)
    assert "mailed" in status_table(site.config)


def test_two_files_for_one_date_are_not_mailed_automatically(site, monkeypatch):
    configure(site, since="2026-01-01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(site.root / "cache"))
    write(site, "2026-11-20")
    write(site, "2026-11-20-copy", date="2026-11-20")
    report = run_once(site.config, NOW)
    assert delivered(site) == []
    assert any(
        line.startswith("2026-11-20: not mailed: 2026-11-20-copy is dated 2026-11-20 too")
        for line in report.lines
    )
    rows = {line.split()[0]: line for line in status_table(site.config).splitlines()[1:]}
    assert "yes (" not in rows["2026-11-20"] and "yes (" not in rows["2026-11-20-copy"]  # not approved
    assert "is dated 2026-11-20 too" in rows["2026-11-20-copy"]
    again = run_once(site.config, NOW)
    assert any(line.startswith("2026-11-20: not mailed: 2026-11-20-copy") for line in again.lines)
    assert idle.is_idle(str(site.config.path), time.time())  # nothing is pending: cron ticks stay cheap


def test_a_missing_subscriber_list_sends_nothing_and_finishes_nothing(site):
    configure(site, since="2026-01-01")
    (site.root / "subscribers.csv").unlink()
    write(site, "2026-11-20")
    report = run_once(site.config, NOW)
    assert report.failed
    assert any("there is no subscriber list here" in line for line in report.lines)
    configure(site, since="2026-01-01")  # the list is back
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE


def test_correcting_the_date_of_a_mailed_issue_does_not_mail_it_again(site):
    configure(site, since="2026-01-01")
    path = write(site, "2026-11-20")
    run_once(site.config, NOW)
    assert delivered(site) == EVERYONE
    path.write_text(ISSUE.format(date="2026-11-19", headline="新一期"), encoding="utf-8")
    report = run_once(site.config, NOW + dt.timedelta(hours=1))
    assert delivered(site) == EVERYONE
    assert any("already mailed as 2026-11-20; its date is now 2026-11-19" in line for line in report.lines)


def bundled_example(tmp_path):
    shutil.copy(ROOT / "digest.toml", tmp_path / "digest.toml")  # auto, settle 0, since = 2026-11-01
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "feeds").mkdir()
    return tmp_path / "var"


def maildir_count(var):
    new = var / "maildir" / "new"
    return len(list(new.iterdir())) if new.exists() else 0


@pytest.mark.parametrize("damage", ["garbled issues.json", "deleted issues.json", "deleted state directory"])
def test_a_held_issue_is_never_mailed_by_a_rebuilt_state(tmp_path, run_env, damage):
    var = bundled_example(tmp_path)
    held = run_digest(["hold", "2026-11-01"], run_env, cwd=tmp_path)
    assert held.returncode == 0, held.stderr
    assert run_digest(["run"], run_env, cwd=tmp_path).returncode == 0
    assert maildir_count(var) == 0
    if damage == "garbled issues.json":
        (var / "state" / "issues.json").write_bytes(b'{"version": 1, "issues": {"2026-11-01": {"ha')
    elif damage == "deleted issues.json":
        (var / "state" / "issues.json").unlink()
    else:
        shutil.rmtree(var / "state")
    after = run_digest(["run"], run_env, cwd=tmp_path)
    assert after.returncode == 0, after.stdout + after.stderr
    assert maildir_count(var) == 0
    assert "every issue file present is history" in after.stdout or damage == "deleted state directory"
    if damage != "deleted state directory":  # the hold outlived the state file beside the ledgers
        status = run_digest(["status"], run_env, cwd=tmp_path).stdout
        assert "held" in next(x for x in status.splitlines() if x.startswith("2026-11-01"))


@pytest.mark.parametrize("damage", ["deleted state directory", "deleted ledgers", "garbled issues.json"])
def test_a_mailed_issue_is_never_mailed_again_after_state_loss(tmp_path, run_env, damage):
    var = bundled_example(tmp_path)
    assert "sent 2026-11-01: sent 3" in run_digest(["run"], run_env, cwd=tmp_path).stdout
    assert maildir_count(var) == 3
    if damage == "deleted state directory":
        shutil.rmtree(var / "state")
    elif damage == "deleted ledgers":
        shutil.rmtree(var / "state" / "ledger")
    else:
        (var / "state" / "issues.json").write_text("[]", encoding="utf-8")
    again = run_digest(["run"], run_env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "sent 2026" not in again.stdout
    assert maildir_count(var) == 3
    status = run_digest(["status"], run_env, cwd=tmp_path)
    assert status.returncode == 0 and "internal error" not in status.stderr
    (tmp_path / "examples" / "issues" / "2026-11-15.md").write_text(
        ISSUE.format(date="2026-11-15", headline="下一期"), encoding="utf-8"
    )
    new = run_digest(["run"], run_env, cwd=tmp_path)  # an issue written after the loss is news again
    assert "sent 2026-11-15: sent 3" in new.stdout, new.stdout + new.stderr
    assert maildir_count(var) == 6


def test_status_of_a_round_cut_short_counts_its_own_recipients_not_those_who_joined_since(site):
    from digest.send.ledger import recipients_path, write_recipients

    configure(site, since="2026-01-01")
    write(site, "2026-11-20")
    state = site.config.paths.state
    due = [{"key": a, "email": a, "name": "", "sections": []} for a in EVERYONE]
    write_recipients(recipients_path(state, "2026-11-20", 1), due)  # the round started with three
    with LedgerWriter(ledger_path(state, "2026-11-20")) as ledger:
        ledger._write(Outcome("a@example.com", "sent", 250, "<x@y>", at="2026-11-22T00:00:00").line())
    with (site.root / "subscribers.csv").open("a", encoding="utf-8") as handle:
        handle.write("new1@example.com,,,active,\nnew2@example.com,,,active,\n")  # two join meanwhile
    rows = {line.split()[0]: line for line in status_table(site.config).splitlines()[1:]}
    assert " 1/0/3 " in rows["2026-11-20"]  # 1 sent of the round's 3, not of the 5 active now
