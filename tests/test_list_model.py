"""The subscriber list against a plain in-memory model, driven by random interleavings.

A Hypothesis state machine changes the list every way it changes in use: library
changes (as the CLI, the web, the webhooks and the bounce reader make them), hand
edits saved in place, over a rename or as a spreadsheet's "CSV UTF-8" (byte order
mark, CRLF), folds, index rebuilds, a fold or rebuild in a real subprocess killed
with SIGKILL at one of its steps, and sends of several rounds to a real SMTP
server on 127.0.0.1 (some messages deferred, a reader leaving mid-send, rounds
resumed). After every step who is on the list and with what status must be what
the model says, and every send must have mailed exactly the model's active
readers due in that round.

The model: ``view`` (address -> status), ``changed`` (addresses changed through
digest since the last fold that finished: a hand edit of one of those is left
out, since the journal's pending change is applied over the file by design), and
``left`` (the readers of the current round not yet reached: a resume mails those
of them who are active by then, and nobody else).

Short here (a fixed seed, no example database); ``DIGEST_MODEL_STEPS=N`` runs
about N steps.
"""

from __future__ import annotations

import codecs
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from conftest import KNOWN, NOW, Site, smtp_config
from digest.errors import SubscriberError
from digest.newsletter.catalog import load_issue
from digest.send.delivery import send_issue
from digest.subscribers.changes import (
    add_subscriber,
    find_subscriber,
    fold_journal,
    remove_subscriber,
    set_status,
    set_statuses,
    warm_index,
)
from digest.subscribers.index import index_path
from digest.subscribers.reading import read_subscribers
from smtpserver import running_server

ADDRESSES = [f"r{n}@example.com" for n in range(6)]
STATUSES = ("active", "unsubscribed", "bounced")
HEADER = "email,name,sections,status,since"
STEPS = int(os.environ.get("DIGEST_MODEL_STEPS", "0"))
STEPS_PER_RUN = 25
LASTING = ("journal", "index", "lock", "journal.lock", "erased")
TALLY = {"runs": 0, "steps": 0, "mailed": 0, "sends": 0, "kills": 0, "hand edits": 0}

KILLED = """
import os, signal, sys
from pathlib import Path
from digest.subscribers import index, rewrite
from digest.subscribers.changes import fold_journal, warm_index
path, job, where, when = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
owner = rewrite._Writer if where == "write" else index.IndexBuilder if where == "finish" else rewrite
real = getattr(owner, where)
def killed(*args, **kwargs):
    if when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(owner, where, killed)
known = {"news", "papers", "projects", "blogs", "apps"}
fold_journal(path, known) if job == "fold" else warm_index(path, known)
"""
KILL_POINTS = ("write", "finish", "record_erased", "mark_fold", "atomic_write", "settle_journal")


class ListMachine(RuleBasedStateMachine):
    """One newsletter's list, its journal and its sends, next to the model."""

    smtp = None  # the running server's recorder, set by the test

    def __init__(self) -> None:
        super().__init__()
        TALLY["runs"] += 1
        self.root = Path(tempfile.mkdtemp(prefix="digest-model-"))
        self.site = Site(self.root)
        self.site.write_config(smtp_config(self.smtp.port, "concurrency = 1\nmax_attempts = 1\n"))
        self.site.copy_examples()
        self.config = self.site.config
        self.issue = load_issue(self.config, "2026-11-01")
        self.path = self.root / "subscribers.csv"
        first = ADDRESSES[:4]  # four readers to begin with
        self.path.write_text(HEADER + "\n" + "".join(f"{a},,,active,2026-01-01\n" for a in first))
        self.view: dict[str, str] = dict.fromkeys(first, "active")
        self.changed: set[str] = set()
        self.left: set[str] = set()
        self.started = False  # whether the issue has a round yet
        self.smtp.faults.data_replies = []
        self.smtp.handle_DATA = type(self.smtp).handle_DATA.__get__(self.smtp)

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- digest's own changes --------------------------------------------------------------------

    @rule(address=st.sampled_from(ADDRESSES))
    def subscribe(self, address: str) -> None:
        try:
            add_subscriber(self.path, KNOWN, address, today=NOW.date())
        except SubscriberError:
            assert self.view.get(address) == "active"
            return
        assert self.view.get(address) != "active"
        self.view[address] = "active"
        self.changed.add(address)

    @rule(address=st.sampled_from(ADDRESSES))
    def unsubscribe(self, address: str) -> None:  # the web's one-click unsubscribe
        found = set_status(self.path, KNOWN, address, "unsubscribed")
        assert (found is None) == (address not in self.view)
        if found is not None:
            self.view[address] = "unsubscribed"
            self.changed.add(address)

    @rule(address=st.sampled_from(ADDRESSES), status=st.sampled_from(["bounced", "unsubscribed"]))
    def bounce_or_complaint(self, address: str, status: str) -> None:  # the bounce reader, a webhook
        set_statuses(self.path, KNOWN, {address: status})
        if address in self.view:
            self.view[address] = status
            self.changed.add(address)

    @rule(address=st.sampled_from(ADDRESSES))
    def erase(self, address: str) -> None:  # digest subscribers remove --purge
        try:
            remove_subscriber(self.path, KNOWN, address, purge=True)
        except SubscriberError:
            assert address not in self.view
            return
        del self.view[address]
        self.changed.add(address)

    @rule()
    def fold(self) -> None:
        fold_journal(self.path, KNOWN)
        self.changed.clear()
        assert self.leftovers() == []
        for address in ADDRESSES:  # the index, rebuilt or not, says what the model says
            found = find_subscriber(self.path, KNOWN, address)
            assert (found.status if found else None) == self.view.get(address), address

    @rule()
    def rebuild_index(self) -> None:
        """The index gone (or stale) and rebuilt by the next lookup, as `digest serve` does at start."""
        index_path(self.path).unlink(missing_ok=True)
        warm_index(self.path, KNOWN)
        assert self.leftovers() == []

    @rule(
        job=st.sampled_from(["fold", "index"]),
        where=st.sampled_from(KILL_POINTS),
        when=st.sampled_from(["before", "after"]),
    )
    def killed(self, job: str, where: str, when: str) -> None:
        """A fold or an index rebuild in another process, SIGKILLed at one of its steps."""
        if job == "index":
            index_path(self.path).unlink(missing_ok=True)
        TALLY["kills"] += 1
        command = [sys.executable, "-c", KILLED, str(self.path), job, where, when]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode in (0, -signal.SIGKILL), result.stderr

    # -- a person with an editor -------------------------------------------------------------------

    @rule(
        address=st.sampled_from(ADDRESSES),
        status=st.sampled_from([*STATUSES, None]),
        how=st.sampled_from(["in place", "rename over", "spreadsheet"]),
    )
    def hand_edit(self, address: str, status: str | None, how: str) -> None:
        """Set one reader's status by hand (None: delete the line), without telling digest."""
        TALLY["hand edits"] += 1
        if address in self.changed:
            return  # its journaled change is applied over the file until a fold: not a promise about this
        raw = self.path.read_bytes()
        bom = raw.startswith(codecs.BOM_UTF8)
        text = raw.decode("utf-8-sig")
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = [line for line in text.split(newline) if line]
        lines = [line for line in lines if not line.startswith(address + ",")]
        if status is not None:
            lines.append(f"{address},,,{status},2026-01-01")
        if how == "spreadsheet":
            bom, newline = True, "\r\n"
        data = (codecs.BOM_UTF8 if bom else b"") + (newline.join(lines) + newline).encode("utf-8")
        before = os.stat(self.path)
        if how == "in place":
            with self.path.open("r+b") as handle:
                handle.truncate(0)
                handle.write(data)
            after = os.stat(self.path)
            if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns) and data != raw:
                how = "rename over"  # the list's signature cannot tell this save apart: see the docs
        if how != "in place":
            tmp = self.path.with_name("edited.csv")
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
        if status is None:
            self.view.pop(address, None)
        else:
            self.view[address] = status

    # -- sending -------------------------------------------------------------------------------------

    def received(self) -> list[str]:
        with self.smtp.lock:
            return [r.rcpt for r in self.smtp.received]

    @rule(deferred=st.integers(0, 2), leaves_midway=st.booleans())
    def send_round(self, deferred: int, leaves_midway: bool) -> None:
        """A new round (``digest send --resend``): some messages deferred, maybe a reader leaving mid-send."""
        active = {a for a, s in self.view.items() if s == "active"}
        TALLY["sends"] += 1
        before = len(self.received())
        self.smtp.faults.data_replies = ["451 4.3.0 try again later"] * deferred
        gone: list[str] = []
        if leaves_midway and not deferred:
            path = self.path

            async def hook(session, envelope):
                if not gone:
                    others = sorted(active - {r.lower() for r in envelope.rcpt_tos})
                    if others:
                        set_status(path, KNOWN, others[0], "unsubscribed")
                        gone.append(others[0])

            self.smtp.before_data(hook)
        try:
            send_issue(self.config, self.issue, NOW, resend=True, progress=False)
        finally:
            self.smtp.faults.data_replies = []
            self.smtp.handle_DATA = type(self.smtp).handle_DATA.__get__(self.smtp)
        self.changed.clear()  # the send folded the journal first
        for address in gone:
            self.view[address] = "unsubscribed"
            self.changed.add(address)
        mailed = self.received()[before:]
        assert len(mailed) == len(set(mailed)), mailed
        assert set(mailed) <= active - set(gone)
        assert len(active - set(gone) - set(mailed)) == min(deferred, len(active))
        self.left = active - set(mailed)  # due and not reached: mailed by a resume if active by then
        self.started = True

    @rule()
    def resume(self) -> None:
        """The next ``digest run`` (or ``digest send`` again): the round's readers not yet reached."""
        TALLY["sends"] += 1
        before = len(self.received())
        if not self.started:  # no round yet: this is the first
            self.left = {a for a, s in self.view.items() if s == "active"}
            self.started = True
        send_issue(self.config, self.issue, NOW, progress=False)
        self.changed.clear()
        mailed = self.received()[before:]
        expected = {a for a in self.left if self.view.get(a) == "active"}
        assert sorted(mailed) == sorted(expected)
        self.left -= expected

    # -- after every step ------------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        lasting = {f".{self.path.name}.{end}" for end in LASTING}
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith(".") and p.name not in lasting)

    @invariant()
    def the_list_says_what_the_model_says(self) -> None:
        TALLY["steps"] += 1
        listing = read_subscribers(self.path, KNOWN)
        assert listing.problems == ()
        assert {s.key: s.status for s in listing.subscribers} == self.view
        assert len(listing.subscribers) == len(self.view)


def test_the_list_keeps_its_promise_against_a_model():
    runs = max(1, STEPS // STEPS_PER_RUN) if STEPS else 8
    options = settings(
        max_examples=runs,
        stateful_step_count=STEPS_PER_RUN,
        derandomize=not STEPS,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    with running_server() as (controller, recorder):
        recorder.port = controller.port
        ListMachine.smtp = recorder
        run_state_machine_as_test(ListMachine, settings=options)
        TALLY["mailed"] = len(recorder.received)
    print("model:", ", ".join(f"{value} {name}" for name, value in TALLY.items()))
