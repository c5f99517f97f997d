"""Twenty SIGKILLs at seeded random moments of `digest run` and `digest send`: nobody lost, no copy
beyond the messages in flight at each kill, nobody mailed who should not be."""

from __future__ import annotations

import random
import signal
import subprocess

from conftest import digest_cmd, run_digest, smtp_config, write_subscribers
from digest.send.ledger import read_ledger

CONCURRENCY = 8
KILLS = 20
ACTIVE = [f"reader{n}@example.com" for n in range(3000)]


def _list(site) -> None:
    rows = [(address, f"读者{n}", "", "active", "2026-01-01") for n, address in enumerate(ACTIVE)]
    rows += [(f"gone{n}@example.com", "", "", "unsubscribed", "") for n in range(50)]
    rows += [(f"dead{n}@example.com", "", "", "bounced", "") for n in range(50)]
    write_subscribers(site.root / "subscribers.csv", rows)


def _kill_at(smtp, command: list[str], env: dict[str, str], count: int) -> bool:
    """Start ``command``; SIGKILL it once the server has accepted ``count`` messages in all.

    ``count`` at or below what was already accepted kills it while it starts up. False when
    the process ended by itself first (the send was done).
    """
    reached = smtp.notify_at(max(count, 1))
    if count <= sum(smtp.per_recipient().values()):
        reached.set()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        while not reached.wait(timeout=0.05):
            if process.poll() is not None:
                _, err = process.communicate()
                assert b"Traceback" not in err and b"internal error" not in err, err.decode()
                return False
        process.send_signal(signal.SIGKILL)
    finally:
        process.communicate()
    return True


def test_twenty_kills_at_random_moments_lose_nobody_and_repeat_only_what_was_in_flight(site, smtp, run_env):
    # Split over two sending processes, as a send to a relay elsewhere is on two cores (the one-process
    # send is killed in test_send_process): both die with the parent, and each resumes its part.
    site.write_config(smtp_config(smtp.port, f"concurrency = {CONCURRENCY}\nprocesses = 2\n"))
    site.copy_examples()
    _list(site)
    approved = run_digest(["approve", "2026-11-01", "--config", str(site.config_path)], run_env)
    assert approved.returncode == 0, approved.stderr
    commands = {
        "run": [*digest_cmd(), "run", "--config", str(site.config_path)],
        "send": [*digest_cmd(), "send", "2026-11-01", "--no-progress", "--config", str(site.config_path)],
    }
    chance = random.Random(20261201)  # seeded: the same moments on every machine
    kills = 0
    for _ in range(KILLS):
        accepted = sum(smtp.per_recipient().values())
        moment = accepted + chance.choice([0, 0, 1, *range(5, 250, 7)])  # 0: while it starts up
        if not _kill_at(smtp, commands[chance.choice(["run", "send"])], run_env, moment):
            break
        kills += 1
    assert kills >= KILLS // 2, "the kills came too late to test anything"

    finish = run_digest(["run", "--config", str(site.config_path)], run_env)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    counts = smtp.per_recipient()
    assert set(counts) == set(ACTIVE)  # nobody lost; nobody unsubscribed or bounced mailed
    assert sum(counts.values()) - len(ACTIVE) <= kills * CONCURRENCY  # copies only of those in flight
    ids: dict[str, set[str]] = {}
    for received in smtp.received:
        ids.setdefault(received.rcpt, set()).add(received.message_id)
    assert all(len(found) == 1 for found in ids.values())  # a second copy is the same message
    ledger = read_ledger(site.root / "state", "2026-11-01")
    assert {to for to, o in ledger.outcomes.items() if o.status == "sent"} == set(ACTIVE)
    again = run_digest(["run", "--config", str(site.config_path)], run_env)
    assert "sent 2026-11-01" not in again.stdout and sum(smtp.per_recipient().values()) == sum(
        counts.values()
    )
