"""The subscriber list edited while a real `digest send` runs: nobody due is lost, and status shows them.

Each test drives one edit from the SMTP server at a chosen message (300 subscribers
at 50 messages a second, so the send takes six seconds): an editor saving in
place, a reorder, a delete-and-restore (git checkout, a sync tool), a hand
unsubscribe. The recipients of a round are fixed when it starts.
"""

from __future__ import annotations

import json
import signal
import subprocess

from conftest import NOW, digest_cmd, run_digest, smtp_config, write_subscribers
from digest.newsletter.catalog import load_issue
from digest.send.delivery import send_issue
from digest.send.ledger import ledger_path, read_ledger, read_tally

COUNT = 300
READERS = [f"reader{n}@example.com" for n in range(COUNT)]
ROWS = [(address, f"读者{n}", "", "active", "2026-01-01") for n, address in enumerate(READERS)]
HEADER = "email,name,sections,status,since\n"


def prepare(site, smtp, extra="rate = 50\nconcurrency = 2\n"):
    site.write_config(smtp_config(smtp.port, extra))
    site.copy_examples()
    path = site.root / "subscribers.csv"
    write_subscribers(path, ROWS)
    return path


def list_text(rows=ROWS):
    return HEADER + "".join(",".join(row) + "\n" for row in rows)


def at_messages(smtp, steps):
    """Run ``steps[n]()`` in the server just before it accepts message number n (counted from 1)."""
    seen = [0]

    async def hook(session, envelope):
        seen[0] += 1
        step = steps.get(seen[0])
        if step is not None:
            step()

    smtp.before_data(hook)


def send(site, env):
    command = [*digest_cmd(), "send", "2026-11-01", "--no-progress", "--config", str(site.config_path)]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def assert_everyone_once(smtp, result, expected=READERS):
    assert result.returncode == 0, result.stderr
    counts = smtp.per_recipient()
    assert sorted(counts) == sorted(expected)
    assert set(counts.values()) == {1}


def test_saving_the_list_in_place_while_a_send_runs_loses_nobody(site, smtp, run_env):
    path = prepare(site, smtp)
    text = list_text()

    def truncate_and_write_half():  # the editor has truncated the file and written part of it
        path.write_text(text[: len(text) * 2 // 5], encoding="utf-8")

    at_messages(
        smtp,
        {
            50: lambda: path.write_text("", encoding="utf-8"),
            55: truncate_and_write_half,
            60: lambda: path.write_text(text, encoding="utf-8"),
        },
    )
    result = send(site, run_env)
    assert_everyone_once(smtp, result)
    assert "unsubscribed meanwhile" not in result.stdout
    assert read_tally(site.root / "state", "2026-11-01").finished


def test_reordering_the_list_in_place_while_a_send_runs_sends_everyone_once(site, smtp, run_env):
    path = prepare(site, smtp)
    reordered = list(reversed(ROWS))
    reordered[0] = (*reordered[0][:3], "unsubscribed", reordered[0][4])  # and one reader leaves by hand
    at_messages(smtp, {50: lambda: path.write_text(list_text(reordered), encoding="utf-8")})
    result = send(site, run_env)
    assert_everyone_once(smtp, result, READERS[:-1])
    assert "1 unsubscribed meanwhile" in result.stdout
    assert read_tally(site.root / "state", "2026-11-01").finished


def test_deleting_the_list_and_writing_it_back_while_a_send_runs_loses_nobody(site, smtp, run_env):
    path = prepare(site, smtp)
    text = list_text()
    at_messages(smtp, {50: path.unlink, 60: lambda: path.write_text(text, encoding="utf-8")})
    result = send(site, run_env)
    assert_everyone_once(smtp, result)
    assert "unsubscribed meanwhile" not in result.stdout


def test_a_send_killed_while_the_list_is_gone_shows_everyone_due_and_resumes(site, smtp, run_env):
    path = prepare(site, smtp)
    text = list_text()
    at_messages(smtp, {50: path.unlink})
    hundred = smtp.notify_at(100)
    command = [*digest_cmd(), "send", "2026-11-01", "--no-progress", "--config", str(site.config_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env)
    while not hundred.wait(timeout=0.2):
        assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGKILL)
    process.communicate()

    status = run_digest(["status", "--json", "--config", str(site.config_path)], run_env)
    records = [json.loads(line) for line in status.stdout.splitlines() if line.strip()]  # one per issue
    row = next(r for r in records if r["issue"] == "2026-11-01")
    assert row["failed"] == 0
    assert row["total"] == COUNT and row["sent"] >= 100 - 2  # the 200 not yet mailed are not hidden
    assert "mailed" not in f"{row['published']} {row['approved']}"

    path.write_text(text, encoding="utf-8")
    resumed = send(site, run_env)
    assert resumed.returncode == 0, resumed.stderr
    counts = smtp.per_recipient()
    assert sorted(counts) == sorted(READERS)
    assert sum(counts.values()) - COUNT <= 2  # only the messages in flight at the kill went twice


def test_a_round_is_not_finished_while_someone_due_was_not_reached(site, smtp):
    path = prepare(site, smtp, "concurrency = 1\n")
    write_subscribers(path, ROWS[:10])
    leaves = [*ROWS[:5], (*ROWS[5][:3], "unsubscribed", ROWS[5][4]), *ROWS[6:10]]
    at_messages(  # reader5 is marked unsubscribed by hand, then active again before the send ends
        smtp,
        {
            1: lambda: path.write_text(list_text(leaves), encoding="utf-8"),
            9: lambda: path.write_text(list_text(ROWS[:10]), encoding="utf-8"),
        },
    )
    issue = load_issue(site.config, "2026-11-01")
    report = send_issue(site.config, issue, NOW, progress=False)
    assert not read_tally(site.root / "state", "2026-11-01").finished
    assert b"finished_round" not in ledger_path(site.root / "state", "2026-11-01").read_bytes()
    assert (report.sent, report.unsubscribed_during, report.deferred, report.unreached) == (9, 1, 1, 1)
    again = send_issue(site.config, issue, NOW, progress=False)
    assert again.sent == 1 and smtp.per_recipient()["reader5@example.com"] == 1
    assert read_ledger(site.root / "state", "2026-11-01").finished


def test_a_status_is_trusted_only_from_lines_written_whole(tmp_path):
    from conftest import KNOWN
    from digest.subscribers.reading import read_statuses

    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + "a@example.com,,,unsubscribed,\nb@example.com,,,unsubscribed", encoding="utf-8")
    assert read_statuses(path, KNOWN) == {"a@example.com": "unsubscribed"}  # b's line may be cut short
    path.write_text("", encoding="utf-8")
    assert read_statuses(path, KNOWN) is None  # truncated by an editor that is about to write it
    path.write_text("email,na", encoding="utf-8")
    assert read_statuses(path, KNOWN) is None
    path.unlink()
    assert read_statuses(path, KNOWN) is None


def test_a_reader_unsubscribed_by_a_hand_edit_saved_in_place_is_not_mailed_later_in_the_send(
    site, smtp, run_env
):
    path = prepare(site, smtp)
    leaves = [*ROWS[:-1], (*ROWS[-1][:3], "unsubscribed", ROWS[-1][4])]  # the last reader leaves by hand
    at_messages(smtp, {50: lambda: path.write_text(list_text(leaves), encoding="utf-8")})
    result = send(site, run_env)
    assert result.returncode == 0, result.stderr
    counts = smtp.per_recipient()
    assert READERS[-1] not in counts and sorted(counts) == sorted(READERS[:-1])
    assert "1 unsubscribed meanwhile" in result.stdout
