"""``digest send`` as a real process: SIGKILL mid-send and re-run, and bad input ending cleanly."""

from __future__ import annotations

import os
import signal
import subprocess

from conftest import digest_cmd, smtp_config, write_subscribers
from digest.send.ledger import read_ledger
from smtpserver import password_authenticator, running_server, tls_context

CONCURRENCY = 8


def send_cmd(site, *extra):
    return [*digest_cmd(), "send", "2026-11-01", "--no-progress", "--config", str(site.config_path), *extra]


def test_sigkill_a_third_of_the_way_then_rerun_gives_everyone_one_copy(site, smtp, run_env):
    site.write_config(smtp_config(smtp.port, f"concurrency = {CONCURRENCY}\n"))
    site.copy_examples()
    active = [f"reader{n}@example.com" for n in range(3000)]
    rows = [(address, f"读者{n}", "", "active", "2026-01-01") for n, address in enumerate(active)]
    rows += [(f"gone{n}@example.com", "", "", "unsubscribed", "") for n in range(100)]
    rows += [(f"dead{n}@example.com", "", "", "bounced", "") for n in range(50)]
    rows.insert(1500, ("broken-line", "", "", "active", ""))
    write_subscribers(site.root / "subscribers.csv", rows)

    third = smtp.notify_at(1000)
    process = subprocess.Popen(send_cmd(site), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env)
    while not third.wait(timeout=0.2):  # a third of the list accepted, or the send died early
        assert process.poll() is None, process.communicate()[1].decode()
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL

    ledger = read_ledger(site.root / "state", "2026-11-01")
    recorded = {to for to, o in ledger.outcomes.items() if o.status == "sent"}
    accepted = smtp.per_recipient()
    assert 1000 <= sum(accepted.values()) < 3000
    assert recorded <= set(accepted)
    assert len(set(accepted) - recorded) <= CONCURRENCY  # only the messages in flight are unrecorded

    rerun = run_send(site, run_env)
    assert rerun.returncode == 1  # the broken line was skipped, and said so
    skipped = next(line for line in rerun.stderr.splitlines() if "broken-line" in line)
    assert "subscribers.csv:1502: invalid address 'broken-line'" in skipped and skipped.endswith(
        "(this line is skipped)"
    )
    assert "Traceback" not in rerun.stderr

    counts = smtp.per_recipient()
    assert set(counts) == set(active)  # every active subscriber, nobody unsubscribed or bounced
    duplicates = {to: n for to, n in counts.items() if n > 1}
    assert sum(n - 1 for n in duplicates.values()) <= CONCURRENCY
    ids: dict[str, set[str]] = {}
    for received in smtp.received:
        ids.setdefault(received.rcpt, set()).add(received.message_id)
    assert all(len(v) == 1 for v in ids.values())  # a re-sent copy carries the same Message-ID
    final = read_ledger(site.root / "state", "2026-11-01")
    assert {to for to, o in final.outcomes.items() if o.status == "sent"} == set(active)


def run_send(site, env):
    return subprocess.run(send_cmd(site), capture_output=True, text=True, env=env)


def assert_one_clear_line(result, *needles):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("digest: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr


def prepare(site, port, extra=""):
    site.write_config(smtp_config(port, "max_errors = 2\n" + extra))
    site.copy_examples()
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "", "", "active", "")])


def test_unreachable_server(site, run_env):
    prepare(site, 1)
    assert_one_clear_line(run_send(site, run_env), "cannot connect to 127.0.0.1:1", "the ledger keeps it")


def test_wrong_password(site, run_env):
    auth = password_authenticator("u", "right")
    with running_server(authenticator=auth, auth_require_tls=False) as (controller, _):
        prepare(site, controller.port, 'username = "u"\nstarttls = "off"\n')
        result = run_send(site, {**run_env, "DIGEST_SMTP_PASSWORD": "wrong"})
        assert_one_clear_line(result, "refused the login for u", "DIGEST_SMTP_PASSWORD")


def test_tls_failure(site, run_env, tls_ca):
    _, cert, _ = tls_ca
    with running_server(tls_context=tls_context(cert), require_starttls=True) as (controller, _):
        prepare(site, controller.port, 'starttls = "required"\n')
        assert_one_clear_line(run_send(site, run_env), "TLS certificate", "ca_file")


def test_list_without_a_header(site, smtp, run_env):
    prepare(site, smtp.port)
    (site.root / "subscribers.csv").write_text("a@example.com,,,active,\n", encoding="utf-8")
    assert_one_clear_line(run_send(site, run_env), "subscribers.csv:1:", "header")
    assert smtp.received == []


def test_a_killed_manual_send_is_resumed_by_the_next_digest_run(site, smtp, run_env):
    """Manual mode, the issue not approved: `digest send` by hand, SIGKILL, then cron's `digest run`."""
    site.write_config(
        smtp_config(smtp.port, "concurrency = 2\n") + '[release]\nmode = "manual"\nsince = 2026-01-01\n'
    )
    site.copy_examples()
    readers = [f"reader{n}@example.com" for n in range(300)]
    write_subscribers(site.root / "subscribers.csv", [(a, "", "", "active", "") for a in readers])
    run = [*digest_cmd(), "run", "--config", str(site.config_path)]
    for _ in range(2):  # the second answers from the idle snapshot
        idle = subprocess.run(run, capture_output=True, text=True, env=run_env)
    assert idle.stdout == "nothing to do\n", idle.stdout + idle.stderr

    some = smtp.notify_at(50)
    process = subprocess.Popen(send_cmd(site), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env)
    while not some.wait(timeout=0.2):
        assert process.poll() is None, process.communicate()[1].decode()
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert len(smtp.per_recipient()) < 300

    resumed = subprocess.run(run, capture_output=True, text=True, env=run_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "sent 2026-11-01: sent " in resumed.stdout and "already done" in resumed.stdout
    assert set(smtp.per_recipient()) == set(readers)
    assert sum(smtp.per_recipient().values()) <= 300 + 2  # only the messages in flight twice
    status = subprocess.run([*digest_cmd(), "status", "--config", str(site.config_path)],
                            capture_output=True, text=True, env=run_env)  # fmt: skip
    assert "mailed" in next(x for x in status.stdout.splitlines() if x.startswith("2026-11-01"))


def _children(pid: int) -> list[int]:
    """The processes ``pid`` forked (its sending processes), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                    stat = handle.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_sending_process_killed_mid_send_is_named_and_its_part_resumed(site, smtp, run_env):
    """One of two sending processes is SIGKILLed (the OOM killer, say): the other finishes its part."""
    site.write_config(smtp_config(smtp.port, "processes = 2\nconcurrency = 4\n"))
    site.copy_examples()
    readers = [f"reader{n}@example.com" for n in range(1000)]
    write_subscribers(site.root / "subscribers.csv", [(a, "", "", "active", "") for a in readers])

    some = smtp.notify_at(100)
    process = subprocess.Popen(send_cmd(site), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env)
    while not some.wait(timeout=0.2):
        assert process.poll() is None, process.communicate()[1].decode()
    senders = _children(process.pid)
    assert len(senders) >= 2  # the two sending processes (and multiprocessing's own helpers, if any)
    os.kill(min(senders), signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == 1
    assert "was killed by SIGKILL before its part was done" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert len(smtp.per_recipient()) < 1000  # the killed process's part is not done

    rerun = run_send(site, run_env)
    assert rerun.returncode == 0, rerun.stderr
    assert set(smtp.per_recipient()) == set(readers)
    assert sum(smtp.per_recipient().values()) <= 1000 + 2  # only the killed process's messages in flight
