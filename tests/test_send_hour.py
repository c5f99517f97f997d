"""The send hour: a released issue waits for ``[release] send_at`` (or its own), across DST changes.

The clock is passed in (``run_once(config, now)``), so a test can stand on
either side of a daylight-saving change; `digest run` subprocesses use the real
clock, so they are given a send hour relative to it.
"""

from __future__ import annotations

import datetime as dt
import marshal
from zoneinfo import ZoneInfo

import pytest

from conftest import run_digest, write_subscribers
from digest.config import SendHour, load_config
from digest.errors import ConfigError
from digest.newsletter.catalog import now_in
from digest.pipeline import run_once
from digest.release import idle, tracking
from digest.release.schedule import next_send_hour
from digest.release.status import status_table
from digest.release.tracking import approve

EVERYONE = ["a@example.com", "b@example.com", "c@example.com"]
ISSUE = """\
---
{front}
---
# 简报 ({date})：新一期

## 论文

- [论文甲 | 某媒体](https://papers.example.org/{date}/a)
摘要：甲。
"""


def configure(site, zone, send_at="", mode="auto"):
    release = f'[release]\nmode = "{mode}"\nsettle_minutes = 0\nsince = 2026-01-01\n'
    release += f'send_at = "{send_at}"\n' if send_at else ""
    site.write_config(
        '[email]\nfrom = "简报 <digest@news.example.org>"\ntransport = "maildir:maildir"\n'
        'unsubscribe_url = "https://news.example.org/unsubscribe"\n' + release
    )
    site.config_path.write_text(site.config_path.read_text().replace("Asia/Shanghai", zone))
    write_subscribers(
        site.root / "subscribers.csv",
        [(address, "", "", "active", "") for address in EVERYONE],
    )


def write(site, date, front="title: 简报"):
    site.write_issue(f"{date}.md", ISSUE.format(date=date, front=front))


def delivered(site) -> list[str]:
    new = site.root / "maildir" / "new"
    found = []
    for path in sorted(new.iterdir()) if new.exists() else []:
        text = path.read_text(encoding="utf-8")
        found.append(text.split("Delivered-To: ", 1)[1].split("\n", 1)[0])
    return sorted(found)


def snapshot_wake(site) -> float | None:
    with open(idle.snapshot_path(str(site.config.path)), "rb") as handle:
        return marshal.load(handle)["wake_at"]


@pytest.fixture
def cache(site, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(site.root / "cache"))


def test_spring_forward_send_hour_in_the_gap_fires_right_after_it_once(site, cache):
    """02:30 does not exist in Berlin on 2026-03-29: the issue goes out at 03:00 CEST, once."""
    configure(site, "Europe/Berlin", send_at="02:30")
    zone = ZoneInfo("Europe/Berlin")
    write(site, "2026-03-29")
    hour = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)  # 03:00 CEST, the first instant after the gap
    report = run_once(site.config, dt.datetime(2026, 3, 29, 0, 10, tzinfo=zone))
    assert delivered(site) == []
    assert "2026-03-29: not mailed: settled; scheduled for 2026-03-29 03:00 +02:00" in report.lines
    run_once(site.config, dt.datetime(2026, 3, 29, 0, 20, tzinfo=zone))  # sees the state it wrote
    assert snapshot_wake(site) == hour.timestamp()
    assert idle.is_idle(str(site.config.path), hour.timestamp() - 1)
    assert not idle.is_idle(str(site.config.path), hour.timestamp())
    run_once(site.config, hour - dt.timedelta(seconds=1))
    assert delivered(site) == []
    table = status_table(site.config, hour - dt.timedelta(seconds=1))
    assert "scheduled for 2026-03-29 03:00 +02:00" in table
    run_once(site.config, hour)
    assert delivered(site) == EVERYONE
    run_once(site.config, hour + dt.timedelta(hours=1))
    assert delivered(site) == EVERYONE  # exactly once


def test_fall_back_send_hour_that_happens_twice_fires_at_the_first(site, cache, monkeypatch):
    """01:30 happens twice in New York on 2026-11-01: the issue goes out at the first (EDT), once."""
    configure(site, "America/New_York", send_at="01:30", mode="manual")
    write(site, "2026-11-01")
    first = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT; 06:30 UTC is 01:30 EST
    run_once(site.config, first - dt.timedelta(hours=2))
    approved_at = first - dt.timedelta(hours=1)
    monkeypatch.setattr(tracking, "now_in", lambda config: approved_at.astimezone(config.site.timezone))
    assert "at its send hour, 2026-11-01 01:30 -04:00" in approve(site.config, "2026-11-01")
    run_once(site.config, first - dt.timedelta(seconds=1))
    assert delivered(site) == []
    assert snapshot_wake(site) == first.timestamp()
    table = status_table(site.config, first - dt.timedelta(seconds=1))
    assert "yes (scheduled for 2026-11-01 01:30 -04:00)" in table  # approved, waiting for its hour
    run_once(site.config, first)
    assert delivered(site) == EVERYONE
    run_once(site.config, first + dt.timedelta(hours=1))  # the second 01:30
    assert delivered(site) == EVERYONE


def test_next_send_hour_across_dst_and_weekdays():
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    after = dt.datetime(2026, 3, 29, 0, 0, tzinfo=berlin)
    assert next_send_hour(SendHour(dt.time(2, 30)), after, berlin).isoformat() == "2026-03-29T03:00:00+02:00"
    autumn = dt.datetime(2026, 10, 25, 2, 45, tzinfo=berlin)  # after the first 02:30, before the second
    assert next_send_hour(SendHour(dt.time(2, 30)), autumn, berlin).isoformat() == "2026-10-26T02:30:00+01:00"
    sunday = dt.datetime(2026, 11, 1, 0, 0, tzinfo=new_york)
    hour = SendHour.parse("Mon,Thu 08:00")
    assert next_send_hour(hour, sunday, new_york).isoformat() == "2026-11-02T08:00:00-05:00"
    thursday = dt.datetime(2026, 11, 2, 8, 1, tzinfo=new_york)
    assert next_send_hour(hour, thursday, new_york).isoformat() == "2026-11-05T08:00:00-05:00"


def test_weekday_send_hour_waits_for_the_next_named_day(site, cache):
    configure(site, "Asia/Shanghai", send_at="Mon,Thu 08:00")
    zone = ZoneInfo("Asia/Shanghai")
    write(site, "2026-11-22")  # a Sunday
    report = run_once(site.config, dt.datetime(2026, 11, 22, 12, 0, tzinfo=zone))
    assert "2026-11-22: not mailed: settled; scheduled for 2026-11-23 08:00 +08:00" in report.lines
    run_once(site.config, dt.datetime(2026, 11, 23, 7, 59, tzinfo=zone))
    assert delivered(site) == []
    run_once(site.config, dt.datetime(2026, 11, 23, 8, 0, tzinfo=zone))
    assert delivered(site) == EVERYONE


def test_front_matter_send_at_wins_and_digest_send_mails_at_once(site, cache, run_env):
    configure(site, "Asia/Shanghai", send_at="08:00")
    today = now_in(site.config).date().isoformat()
    write(site, today, front=f"send_at: {today} 23:59")
    moment = dt.datetime.fromisoformat(f"{today} 23:59").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    if now_in(site.config) >= moment:
        pytest.skip("the real clock is past 23:59 in Shanghai")
    args = ["--config", str(site.config_path)]
    result = run_digest(["run", *args], run_env)
    assert result.returncode == 0, result.stderr
    assert f"not mailed: settled; scheduled for {today} 23:59 +08:00" in result.stdout
    assert delivered(site) == []
    run_env["XDG_CACHE_HOME"] = str(site.root / "cache")
    assert run_digest(["run", *args], run_env).stdout.strip() == "nothing to do"  # the idle fast path
    assert snapshot_wake(site) == moment.timestamp()
    assert idle.is_idle(str(site.config.path), moment.timestamp() - 1)  # cron ticks stay cheap until then
    assert not idle.is_idle(str(site.config.path), moment.timestamp())
    sent = run_digest(["send", today, *args], run_env)
    assert sent.returncode == 0, sent.stderr
    assert delivered(site) == EVERYONE  # digest send does not wait: it mails at once, on purpose
    run_digest(["run", *args], run_env)
    assert delivered(site) == EVERYONE


def test_a_send_hour_in_the_past_mails_on_the_next_run(site, run_env):
    """A cron that was down at the hour mails on its first run after it, once."""
    configure(site, "Asia/Shanghai")
    today = now_in(site.config).date().isoformat()
    write(site, today, front=f"send_at: {today} 00:00")
    args = ["--config", str(site.config_path)]
    result = run_digest(["run", *args], run_env)
    assert result.returncode == 0, result.stderr
    assert delivered(site) == EVERYONE
    run_digest(["run", *args], run_env)
    assert delivered(site) == EVERYONE


@pytest.mark.parametrize("value", ["8", "25:00", "Mon08:00", "Someday 08:00"])
def test_bad_send_at_is_a_config_error_naming_the_key(site, value):
    configure(site, "Asia/Shanghai", send_at=value)
    with pytest.raises(ConfigError) as caught:
        load_config(site.config_path)
    message = str(caught.value)
    assert '\'release.send_at\' must be a time such as "08:00" or "Mon,Thu 08:00"' in message
    assert "\n" not in message


def test_bad_front_matter_send_at_is_a_lint_error_with_its_line(site, run_env):
    configure(site, "Asia/Shanghai")
    write(site, "2026-11-20", front="title: 简报\nsend_at: tomorrow morning")
    path = site.issues / "2026-11-20.md"
    result = run_digest(["lint", str(path), "--config", str(site.config_path)], run_env)
    assert ":3:" in result.stdout and "bad-send-at" in result.stdout, result.stdout
    issue = site.parsed()[0]
    finding = next(f for f in issue.findings if f.code == "bad-send-at")
    assert finding.line == 3 and issue.send_at is None


def test_preview_says_when_the_send_hour_mails_it(site):
    from digest.web.preview import release_decision

    configure(site, "Asia/Shanghai", send_at="08:00", mode="manual")
    write(site, "2026-11-22")
    issue = site.parsed()[0]
    now = dt.datetime(2026, 11, 22, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision, blocked = release_decision(site.config, issue, now)
    assert decision == "批准后寄出，于发送时间 2026-11-22 08:00 +08:00 寄出" and not blocked


def test_a_send_begun_before_the_hour_resumes_without_waiting_for_it(site, cache, monkeypatch):
    """Approved for 08:00, then mailed at once by digest send and cut short: the next run finishes it."""
    from digest.send.ledger import Outcome, ledger_path
    from digest.send.ledger_writer import LedgerWriter

    zone = ZoneInfo("Asia/Shanghai")
    configure(site, "Asia/Shanghai", send_at="08:00", mode="manual")
    write(site, "2026-11-22")
    early = dt.datetime(2026, 11, 22, 5, 0, tzinfo=zone)
    run_once(site.config, early)
    monkeypatch.setattr(tracking, "now_in", lambda config: early)
    approve(site.config, "2026-11-22")
    with LedgerWriter(ledger_path(site.config.paths.state, "2026-11-22")) as ledger:
        ledger._write(Outcome("a@example.com", "sent", 250, "<x@y>", at="2026-11-22T05:00:00").line())
    run_once(site.config, dt.datetime(2026, 11, 22, 6, 0, tzinfo=zone))
    assert delivered(site) == ["b@example.com", "c@example.com"]


def test_digest_parse_shows_the_issues_own_send_hour(site, run_env):
    import json

    configure(site, "Europe/Berlin")
    write(site, "2026-03-29", front="send_at: 2026-03-29 02:30")  # in the spring gap
    path = str(site.issues / "2026-03-29.md")
    result = run_digest(["parse", "--json", path, "--config", str(site.config_path)], run_env)
    assert json.loads(result.stdout.splitlines()[0])["send_at"] == "2026-03-29T03:00:00+02:00", result.stderr
