"""The bounce record: a webhook costs the same however long the history, waits for no mailbox
being read, counts a source once, and a record kept as bounces.json is carried over."""

from __future__ import annotations

import datetime as dt
import json
import time

from test_webhooks import SECRET, post, signed

from conftest import SERVE_CONFIG, write_subscribers
from digest.bounces.classify import Event, Verdict
from digest.bounces.record import _lock
from digest.bounces.store import BounceStore, bounce_counts
from servehelpers import serving, status_of

NOW = dt.datetime.now(dt.UTC)


def history(site, events: int) -> None:
    """``events`` past soft bounces of addresses not on the list, as years of webhooks leave them."""
    with BounceStore(site.config.paths.state) as store, store.transaction():
        for n in range(events):
            event = Event(f"gone{n}@example.net", "soft", "temporary failure", "2026-10-01", "4.2.2")
            store.add(f"old:{n}", Verdict("soft", "old", (event,)), NOW - dt.timedelta(days=n % 300))


def seconds_per_post(server, count: int, first: int) -> float:
    started = time.monotonic()
    for n in range(first, first + count):
        status, text = post(
            server, "/webhooks/bounce", *signed({"address": f"r{n}@example.com", "kind": "soft"})
        )
        assert status == 200, text
    return (time.monotonic() - started) / count


def test_a_webhook_costs_the_same_with_a_hundred_thousand_events_behind_it(site, monkeypatch):
    monkeypatch.setenv("DIGEST_WEBHOOK_SECRET", SECRET)
    site.write_config(SERVE_CONFIG)
    write_subscribers(
        site.root / "subscribers.csv", [(f"r{n}@example.com", "", "", "active", "") for n in range(80)]
    )
    with serving(site.config) as server:
        empty = seconds_per_post(server, 20, 0)
        history(site, 100_000)
        full = seconds_per_post(server, 20, 20)
        with _lock(site.config.paths.state):  # a mailbox being read meanwhile holds its lock
            locked = seconds_per_post(server, 20, 40)
        again = post(server, "/webhooks/bounce", *signed({"address": "r0@example.com", "kind": "soft"}, at=0))
    assert full < 3 * empty + 0.05 and locked < 3 * empty + 0.05, (empty, full, locked)
    assert again[0] == 401  # a replay of a stale post: refused
    assert status_of(site, "r0@example.com") == "active"


def test_a_source_counts_once_even_when_applying_it_was_cut_short(site):
    site.write_config(SERVE_CONFIG + "[bounces]\nsoft_limit = 2\n")
    write_subscribers(site.root / "subscribers.csv", [("a@example.com", "", "", "active", "")])
    soft = Verdict("soft", "delayed", (Event("a@example.com", "soft", "temporary failure"),))
    with BounceStore(site.config.paths.state) as store, store.transaction():
        store.add("ses:1", soft, NOW)  # recorded, then the process died before applying it
    from digest.bounces.record import apply_events

    assert "counted" in apply_events(site.config, "ses:1", soft, NOW)  # applied now, not added again
    assert apply_events(site.config, "ses:1", soft, NOW) == "ses:1: already handled"
    assert status_of(site, "a@example.com") == "active"  # one soft failure, not two
    assert "bounced" in apply_events(site.config, "ses:2", soft, NOW)


def test_a_record_kept_as_bounces_json_is_carried_over(site):
    site.write_config(SERVE_CONFIG)
    state = site.config.paths.state
    state.mkdir(parents=True)
    at = NOW.isoformat(timespec="seconds")
    event = {"address": "a@example.com", "kind": "hard", "reason": "r", "issue": "2026-11-01"}
    event |= {"status": "5.1.1", "at": at, "source": "mid:<1@x>"}
    old = {"handled": {"mid:<1@x>": {"at": at, "kind": "hard", "applied": True}}, "events": [event]}
    (state / "bounces.json").write_text(json.dumps(old))
    assert bounce_counts(state) == {"2026-11-01": (1, 0)}
    assert not (state / "bounces.json").exists() and (state / "bounces.json.imported").exists()
    with BounceStore(state) as store:
        assert store.seen("mid:<1@x>") is True


def test_forty_webhooks_at_once_over_a_long_history_leave_a_reader_answered_within_a_second(
    site, monkeypatch
):
    import threading

    from servehelpers import request

    monkeypatch.setenv("DIGEST_WEBHOOK_SECRET", SECRET)
    site.write_config(SERVE_CONFIG)
    write_subscribers(
        site.root / "subscribers.csv", [(f"r{n}@example.com", "", "", "active", "") for n in range(40)]
    )
    history(site, 100_000)
    with serving(site.config) as server:
        codes: list[int] = []
        posts = [
            threading.Thread(
                target=lambda n=n: codes.append(
                    post(
                        server, "/webhooks/bounce", *signed({"address": f"r{n}@example.com", "kind": "soft"})
                    )[0]
                )
            )
            for n in range(40)
        ]
        for thread in posts:
            thread.start()
        started = time.monotonic()
        page = request(server, "GET", "/subscribe")
        waited = time.monotonic() - started
        for thread in posts:
            thread.join(30)
    assert page[0] == 200 and waited < 1.0, waited
    assert codes == [200] * 40
