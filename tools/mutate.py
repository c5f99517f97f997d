"""Mutation testing for the code that decides who is mailed.

Each mutant is one small change to one module (a comparison flipped, ``and``
for ``or``, a condition negated, a constant changed, a return value dropped, a
call, ``raise``, ``continue`` or counter update removed), made with :mod:`ast`
in a private copy of the repository, never in the working files: an interrupted
run leaves nothing behind. The copy's tests that exercise the module run
against it with the copy first on ``PYTHONPATH``, so the ``digest`` subprocesses
the tests start run the mutant too. A mutant is killed when a test fails (or
the run times out); the score is killed / (mutants - equivalent ones).

    python tools/mutate.py                       # every module, every mutant
    python tools/mutate.py --module ledger -j 2  # one module, two workers
    python tools/mutate.py --sample 20 --seed 7  # a seeded sample of 20 per module
    python tools/mutate.py --list                # the mutants, without running them
    python tools/mutate.py --since main          # only the lines changed since main
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EQUIVALENT", "MODULES", "Mutant", "apply", "main", "mutants"]

ROOT = Path(__file__).resolve().parents[1]

# module -> the test files that exercise it, the quickest and most pointed first (pytest -x stops
# at the first failure, so a mutant those kill never waits for the slow end-to-end files).
LIST_TESTS = (
    "tests/test_index_units.py",  # the lookup index alone: its answers, its failures, its memory
    "tests/test_subscriber_list.py",
    "tests/test_recipients_units.py",  # the statuses a send reads from the list and its journal
    "tests/test_subscribers.py",
    "tests/test_journal.py",
    "tests/test_list_promise.py",
    "tests/test_list_model.py",
    "tests/test_delivery.py",
    "tests/test_list_during_send.py",  # the list re-read mid-send (read_statuses)
    "tests/test_serve.py",
)
DELIVERY_TESTS = (
    "tests/test_session_units.py",
    "tests/test_recipients_units.py",
    "tests/test_delivery_units.py",
    "tests/test_delivery_rules.py",
    "tests/test_session.py",
    "tests/test_refusals.py",
    "tests/test_list_during_send.py",  # a status changed mid-send, as the sending processes see it
    "tests/test_delivery.py",
    "tests/test_ledger.py",
    "tests/test_send_process.py",
    "tests/test_release.py",
)
MODULES: dict[str, tuple[str, ...]] = {
    "digest/send/ledger.py": (
        "tests/test_ledger_units.py",
        "tests/test_ledger.py",
        "tests/test_keys.py",
        "tests/test_delivery.py",
        "tests/test_release.py",
        "tests/test_send_process.py",
    ),
    "digest/send/ledger_writer.py": (
        "tests/test_ledger_units.py",
        "tests/test_ledger.py",
        "tests/test_keys.py",
        "tests/test_delivery_units.py",
        "tests/test_delivery.py",
        "tests/test_send_process.py",
    ),
    "digest/release/rules.py": (
        "tests/test_release_rules.py",
        "tests/test_release.py",
        "tests/test_delivery.py",
    ),
    "digest/subscribers/model.py": LIST_TESTS,
    "digest/subscribers/reading.py": LIST_TESTS,
    "digest/subscribers/rewrite.py": LIST_TESTS,
    "digest/subscribers/changes.py": LIST_TESTS,
    "digest/subscribers/index.py": LIST_TESTS,
    "digest/subscribers/journal.py": LIST_TESTS,
    "digest/send/delivery.py": DELIVERY_TESTS,
    "digest/send/shard.py": DELIVERY_TESTS,
    "digest/send/recipients.py": DELIVERY_TESTS,
    "digest/send/session.py": DELIVERY_TESTS,
}

# Mutants that change nothing a user can see, left out of the score. Keyed by the module, the
# source line (stripped) and the change as printed, so the entries survive edits elsewhere.
TIMING = "retry timing only: who is mailed and what is recorded stay the same"
DECLINES = "the fast path declines: email-validator decides, the same way"
ENCODER = (
    "_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode  # one encoder for every line"
)
BAR = "the rich bar on a terminal: what it draws, not what is sent (tests run off a terminal)"
EQUIVALENT: dict[str, dict[tuple[str, str], str]] = {
    "digest/send/ledger.py": {
        (
            "due: int | None = field(default=None, compare=False)  "
            "# due when the round started (None: unknown)",
            "False -> True",
        ): "no code compares two tallies; due is shown, never compared",
        (
            "started: bool = False",
            "False -> True",
        ): "scan_round always passes started: the default is never used",
        (
            "finished: bool = False",
            "False -> True",
        ): "scan_round always passes finished: the default is never used",
        ("fsync_directory(path.parent)", "`fsync_directory(path.parent)` removed"): (
            "the rename of the round's recipients made durable against a power cut only"
        ),
        (
            '_RANK = {"deferred": 0, "skipped": 1, "failed": 2, "sent": 3}',
            "3 -> 4",
        ): "sent still ranks highest",
        (
            'p for p in directory.glob(f"{stem}.*.jsonl") if (m := _SHARD.match(p.name)) '
            'and m["stem"] == stem',
            "and -> or",
        ): "an issue key is a date: no other issue's files match the glob",
        (
            'return file_lock(state_dir / LEDGER_DIR / f"{stem}.lock", what=f"sending {stem}", wait=0)',
            "0 -> 1",
        ): "a second sender is still refused, one second later",
        (
            "quoted = sorted(re.escape(json.dumps(a.lower(), ensure_ascii=False)[1:-1].encode()) "
            "for a in addresses)",
            "False -> True",
        ): "stored addresses are ASCII (check_email returns the ASCII form)",
        (
            "finished: bool = False  # the round's send ran to the end with nothing deferred",
            "False -> True",
        ): ("a default no caller in digest uses"),
        (
            "exists: bool = False  # a send of this issue has begun",
            "False -> True",
        ): "a default no caller uses",
        ("started: bool = False  # the round has a start marker (a --resend)", "False -> True"): (
            "a default no caller uses"
        ),
        (
            "finished: bool = False  # the round's send ran to the end with nothing deferred",
            "False -> True (same line #2)",
        ): "a default no caller uses",
        ("continue", "`continue` removed"): "a blank line fails json.loads just after and is skipped there",
        ("end = -1", "1 -> 0"): "no match starts before 0 either",
        ("continue  # a second match on a line already taken", "`continue` removed"): (
            "a line JSON wrote has one outcome: the selector cannot match it twice"
        ),
        ('start = data.rfind(b"\\n", 0, match.start()) + 1', "0 -> 1"): (
            "only a leading blank line differs, and JSON ignores it"
        ),
        ("end = len(data) if end < 0 else end", "0 -> 1"): "the newline after a match is never at offset 0",
        ("if known is None or _RANK.get(outcome.status, -1) >= _RANK.get(known.status, -1):", "1 -> 0"): (
            "digest writes no status outside the four ranked ones"
        ),
        (
            "if known is None or _RANK.get(outcome.status, -1) >= _RANK.get(known.status, -1):",
            "1 -> 0 (same line #2)",
        ): "digest writes no status outside the four ranked ones",
        ("def _last_record(path: Path, window: int = 4096) -> dict[str, Any] | None:", "4096 -> 4097"): (
            "a marker line is far shorter than either window"
        ),
        ("size = handle.seek(0, os.SEEK_END)", "0 -> 1"): "one byte more of window",
        ("handle.seek(max(0, size - window))", "0 -> 1"): (
            "only a ledger that is one marker line reads differently, and counting lines gives the same"
        ),
        ("handle.flush()", "`handle.flush()` removed"): (
            "the snapshot's last block made durable against a power cut only: closing the file writes it "
            "before the rename"
        ),
        ("os.fsync(handle.fileno())", "`os.fsync(handle.fileno())` removed"): (
            "durability against a power cut; a SIGKILL keeps the page cache"
        ),
        (
            ENCODER,
            "False -> True",
        ): "an outcome or a round's recipient reads back the same (escaped non-ASCII)",
        (
            ENCODER,
            "True -> False",
        ): "key order: an outcome or a round's recipient reads back the same",
    },
    "digest/send/ledger_writer.py": {
        ("self._committing = True", "True -> False"): (
            "a commit is scheduled for every line of a turn: the first takes them all, the rest find none"
        ),
        ("handle.flush()", "`handle.flush()` removed"): "nothing is buffered: truncate() flushes first",
        ("os.fsync(handle.fileno())", "`os.fsync(handle.fileno())` removed"): (
            "the cut made durable against a power cut only; a SIGKILL keeps the page cache"
        ),
        ("if self._fd >= 0:", "0 -> 1"): "the descriptor of a ledger is never 0 (stdin is open)",
        ("self._fd = -1", "1 -> 0"): "__exit__ never runs without __enter__",
        ("self._fd = -1", "1 -> 0 (same line #2)"): "a writer is not closed twice",
        ("os.fsync(self._fd)", "`os.fsync(self._fd)` removed"): (
            "durability against a power cut; a SIGKILL keeps the page cache"
        ),
        (
            "QUICK_FSYNC = 0.002  # seconds: an fsync quicker than this is made on the event loop",
            "0.002 -> 1.002",
        ): ("where an fsync runs, on the loop or in its thread: every line is still durable before its dot"),
        ("if self._syncer is None:", "is -> is not"): (
            "the loop's default executor runs the fsync instead of the ledger's own thread: the same fsyncs, "
            "one batch at a time"
        ),
        ("REPAIR_BLOCK = 1 << 16", "16 -> 17"): "the repair reads the end in larger blocks: the same cut",
        (
            "self._syncer.shutdown(wait=True)  # an fsync still running finishes before the file closes",
            "`self._syncer.shutdown(wait=True)` removed",
        ): "as with wait=False: only a send stopped by a failure has an fsync running at exit",
        ("end = handle.seek(0, os.SEEK_END)", "0 -> 1"): (
            "one past the end: the last byte reads as missing; the cut at the last line ending is the same"
        ),
        ("handle.seek(end - 1)", "`handle.seek(end - 1)` removed"): (
            "reading at the end finds no byte: the cut at the last line ending is the same"
        ),
        (
            "handle.seek(end - 1)",
            "1 -> 0",
        ): "reading at the end finds no byte: the cut at the last line ending is the same",
        ('if handle.read(1) == b"\\n":', "1 -> 0"): (
            "reading no byte goes on to the cut at the last line ending, which is the end: nothing is cut"
        ),
        ('self._write(json.dumps(marker, sort_keys=True).encode() + b"\\n")', "True -> False"): (
            "the order of a JSON line's keys: every reader looks keys up by name"
        ),
        (
            "self._syncer.shutdown(wait=True)  # an fsync still running finishes before the file closes",
            "True -> False",
        ): "an fsync is still running at exit only when a failure stopped the send: its lines count as "
        "in flight, and no finish marker is written after them",
    },
    "digest/subscribers/index.py": {
        (
            'self._db.execute("PRAGMA journal_mode=OFF")',
            "`self._db.execute('PRAGMA journal_mode=OFF')` removed",
        ): ("sqlite keeps a rollback journal while it writes the index, deleted at the commit: cost only"),
        ("if len(self._batch) >= 10_000:", "10000 -> 10001"): "rows go in batches one larger: the same index",
        (
            "path.parent.mkdir(parents=True, exist_ok=True)",
            "`path.parent.mkdir(parents=True, exist_ok=True)` removed",
        ): ("an index is built beside a list or journal that exists: its folder is there"),
        (
            'self._db.execute("PRAGMA synchronous=OFF")',
            "`self._db.execute('PRAGMA synchronous=OFF')` removed",
        ): ("the index is rebuilt from the list when in doubt: how durably sqlite writes it costs time only"),
        ("path.parent.mkdir(parents=True, exist_ok=True)", "True -> False"): (
            "an index is built beside a list that exists: its folder is there"
        ),
        ("self._db.close()", "`self._db.close()` removed"): (
            "the data is committed before the rename, and the builder closes the connection on exit"
        ),
        ("self._db.close()", "`self._db.close()` removed (same line #2)"): (
            "the next line drops the connection's only reference: CPython closes it there and then"
        ),
        ("return IndexRow(row[0], row[1], bool(row[2]), *row[3:]) if row else None", "2 -> 3"): (
            "an unreadable record is indexed without fields and a readable one always with its email: "
            "the email is as true as the readable flag"
        ),
        (
            "return contextlib.closing(sqlite3.connect(index_path(path).resolve().as_uri() "
            '+ "?mode=ro", uri=True))',
            "True -> False",
        ): "an SQLite built with SQLITE_USE_URI (Debian's is) reads the URI, read-only, all the same",
    },
    "digest/release/rules.py": {
        ('if answer[1] == "approved" and record.approval is not None:', "and -> or"): (
            "a released issue with an approval is always released as approved (a stale one is not released)"
        ),
    },
    "digest/subscribers/model.py": {
        ("if len(local) > 64 or len(domain) > 253:", "`if` condition negated"): (
            "plain addresses go to email-validator, which decides them the same; long local parts stay on "
            "the fast path, and email-validator 2 accepts them too (a domain over 253 makes an address "
            "over 254)"
        ),
        ("if len(local) > 64 or len(domain) > 253:", "or -> and"): (
            "long local parts stay on the fast path, and email-validator 2 accepts them too"
        ),
        ("line: int = 0", "0 -> 1"): "the line of a subscriber digest adds is never read",
        (
            "if len(local) > 64 or len(domain) > 253:",
            "> -> <=",
        ): "the fast path declines: email-validator decides, the same way",
        (
            "if len(local) > 64 or len(domain) > 253:",
            "> -> <= (same line #2)",
        ): "the fast path declines: email-validator decides, the same way",
        (
            "if len(local) > 64 or len(domain) > 253:",
            "64 -> 65",
        ): "email-validator 2 accepts a 65-character local part too",
        (
            "if len(local) > 64 or len(domain) > 253:",
            "253 -> 254",
        ): "an address of at most 254 characters cannot have a longer domain",
        ("while domain not in SPECIAL_USE_DOMAINS:", "not in -> in"): DECLINES,
        ("return False", "False -> True"): DECLINES,
        ("return False", "return value dropped (None)"): "None is as false as False",
        ('return f"{local}@{domain}"', "return value dropped (None)"): DECLINES,
    },
    "digest/subscribers/reading.py": {},
    "digest/subscribers/rewrite.py": {
        ("self.shift = 0  # new line minus old line, for the lines inside the last record", "0 -> 1"): (
            "the first record with a line of its own sets the shift before any line without one uses it"
        ),
        ("result.close()", "`result.close()` removed"): (
            "an unnamed temporary file, closed when the rewrite's result is dropped a moment later"
        ),
        ("return []", "return value dropped (None)"): "no caller reads what sweep_leftovers removed",
        (
            "return []",
            "return value dropped (None) (same line #2)",
        ): "no caller reads what sweep_leftovers removed",
        (
            "if key is None or not self._seen(key, -line if problem is not None else line):",
            "is not -> is",
        ): "only the presence of a key in the address map is read (an import skips it), not its line",
        ("LOCK_WAIT = 30.0", "30.0 -> 31.0"): "a busy list is given up on one second later",
        ("REWRITE_ATTEMPTS = 5", "5 -> 6"): "one more try before giving up on a list that keeps changing",
        (
            "old = problem.line if problem else (row.subscriber.line if row.subscriber else 0)",
            "0 -> 1",
        ): "a line with no record (blank) has no address to index; the shift it sets is reset by the next "
        "record with a line of its own before any swallowed line uses it",
        (
            "self._seen(key, 0)",
            "0 -> 1",
        ): "an erased record's place in the address map: only its presence is read (an import skips it)",
        ("return False", "return value dropped (None)"): "no caller reads _rewrite's answer",
        ("return False", "False -> True"): "no caller reads _rewrite's answer",
        ("return True", "return value dropped (None)"): "no caller reads _rewrite's answer",
        ("return True", "True -> False"): "no caller reads _rewrite's answer",
    },
    "digest/subscribers/changes.py": {
        ("keys[subscriber.key] = 0", "0 -> 1"): "only the sign of a key's line is read",
    },
    "digest/subscribers/journal.py": {
        (
            'lines = [json.dumps(header, sort_keys=True).encode() + b"\\n"] if header else []',
            "True -> False",
        ): "the fold header is built with folded first, so its line starts the same sorted or not",
        ('start = data.find(needle, data.find(b"\\n", start) + 1 or len(data))', "1 -> 0"): (
            "the scan resumes at the line break instead of after it: no address's needle starts with one"
        ),
        ("return made", "return value dropped (None) (same line #2)"): (
            "no caller reads what appending nothing returns (set_statuses ignores it; append_change adds one)"
        ),
        ("created = not target.exists()", "`not` dropped"): (
            "the folder's fsync after the journal is first made: durable against a power cut only"
        ),
        ("os.fsync(fd)", "`os.fsync(fd)` removed"): (
            "the erased file's fsync: durable against a power cut only (a SIGKILL keeps the page cache)"
        ),
        ("folded = 0", "0 -> 1"): (
            "a journal without a header or any readable change numbers its first change 2, not 1: "
            "change numbers only need to rise"
        ),
        ("if not current.changes and not current.folding:", "`not` dropped"): (
            "a settle runs under the list's lock on a journal a fold has marked (its header is there): "
            "one with changes and no header never reaches it, one with neither is written back the same"
        ),
    },
    "digest/send/delivery.py": {
        ("whole = not reasons and _all_answered(report, total)", "`not` dropped"): (
            "the ledger read back where the run's own counters would do: the same counts (a test holds the "
            "finish marker to a full read)"
        ),
        (
            "tally = final.tally() if final is not None else LedgerTally(report.round, counted, exists=True)",
            "True -> False",
        ): "the finish marker records only the counts",
        ("return not report.unsubscribed_during and outcomes == total", "return value dropped (None)"): (
            "the shortcut declines: the round's recipients are read again and give the same count"
        ),
        ("return not report.unsubscribed_during and outcomes == total", "`not` dropped"): (
            "outcomes and leavers add up to those taken up, so with a leaver the outcomes never match: "
            "the shortcut declines and the full count is the same"
        ),
        (
            "recipients.refresh()  # the statuses, read once here and shared with the forked "
            "sending processes",
            "`recipients.refresh()` removed",
        ): "the statuses read once for the sending processes to share: each reads them itself otherwise",
        ("left = max(0, total - sum(shared.totals().values()))", "0 -> 1"): (
            "a stopped send has one not counted at least: the recipient whose outcome stopped it"
        ),
        ("if exitcode < 0 and -exitcode in signal.valid_signals()", "and -> or"): (
            "a process's exit status is below 0 only when a signal ended it"
        ),
        ("if exitcode < 0 and -exitcode in signal.valid_signals()", "0 -> 1"): (
            "only a non-zero exit status gets here: below 0 and below 1 are the same test"
        ),
        (
            "context.Process(target=child_process, args=(replace(job, shard=k), shared, os.getpid()), "
            "daemon=True)",
            "True -> False",
        ): "the parent waits for its children anyway",
        (
            "return os.cpu_count() or 1",
            "1 -> 0",
        ): "max(1, ...) in _process_count makes an unknown core count one",
        (
            "return max(1, min(wanted, config.email.concurrency, math.ceil(recipients / 100) or 1))",
            "1 -> 0",
        ): "every term of the min() is at least 1",
        (
            "return []",
            "return value dropped (None) (same line #2)",
        ): "report.bounced is only read for its truth and contents: None and [] read the same",
        (
            "if outcome.at[:10] < since[:10]:",
            "10 -> 11",
        ): "since holds a date: an 11th character of the time only orders the same day after it",
        (
            "if outcome.at[:10] < since[:10]:",
            "10 -> 11 (same line #2)",
        ): "since holds a date of 10 characters",
        (
            "return max(1, min(wanted, config.email.concurrency, math.ceil(recipients / 100) or 1))",
            "1 -> 0 (same line #2)",
        ): "max(1, ...) makes a send to nobody one process either way",
        ("resend: bool = False,", "False -> True"): "every caller in digest passes resend",
        ("sent: int = 0", "0 -> 1"): "send_issue sets every counter from the shared totals",
        ("processes: int = 1", "1 -> 0"): "send_issue always passes it",
        (
            'context = multiprocessing.get_context("fork" if shards > 1 else None)',
            "> -> <=",
        ): "fork is the default start method on Linux",
        (
            'context = multiprocessing.get_context("fork" if shards > 1 else None)',
            "1 -> 0",
        ): "fork is the default start method on Linux",
        ("if job.shards == 1:", "1 -> 0"): "a one-shard send in a forked child sends the same",
        ("bar.close()", "`bar.close()` removed (same line #2)"): BAR,
        (
            "multiprocessing.connection.wait(running, 0.2)  # sleeps until one ends, or the bar is due",
            "`multiprocessing.connection.wait(running, 0.2)` removed",
        ): ("a busier wait for the same children"),
        (
            "multiprocessing.connection.wait(running, 0.2)  # sleeps until one ends, or the bar is due",
            "0.2 -> 1.2",
        ): "the bar is redrawn less often; the wait ends as soon as a process does",
        ("bar.refresh()", "`bar.refresh()` removed"): BAR,
        ("bar.close()", "`bar.close()` removed"): BAR,
    },
    "digest/send/shard.py": {
        ("return queued[0] if len(queued) == 1 else asyncio.gather(*queued)", "== -> !="): (
            "one outcome gathered: its worker waits for the same line"
        ),
        ("return queued[0] if len(queued) == 1 else asyncio.gather(*queued)", "1 -> 0"): (
            "one outcome gathered: its worker waits for the same line"
        ),
        ('if os.environ.get(UVLOOP_ENV, "1") == "0":', "== -> !="): (
            "which event loop runs the send, uvloop's or asyncio's own: the same messages and records"
        ),
        ("raise ImportError", "`raise ImportError` removed"): (
            "which event loop runs the send, uvloop's or asyncio's own: the same messages and records"
        ),
        (
            "envelope, message.recipient, message.parts, prepared=True, before_end=before_end",
            "True -> False",
        ): ("the message is CRLF and dot-safe as built: making it so again changes no byte"),
        (
            "session_ends += 1  # the server closed a session that had delivered: a new one goes on",
            "`session_ends += 1` removed",
        ): "a new session has delivered nothing, so one message meets one session end at most",
        (
            "session_ends += 1  # the server closed a session that had delivered: a new one goes on",
            "1 -> 0",
        ): "a new session has delivered nothing, so one message meets one session end at most",
        ("attempt, session_ends = 0, 0", "0 -> 1 (same line #2)"): (
            "a new session has delivered nothing, so one message meets one session end at most"
        ),
        (
            "continue",
            "`continue` removed (same line #3)",
        ): "UNSUBSCRIBED is no Outcome: the next check skips it",
        (
            "continue",
            "`continue` removed (same line #4)",
        ): "a Doubtful is no Outcome: the next check skips it",
        ("delivered_before: int = 0  # messages of this round delivered by earlier runs", "0 -> 1"): (
            "send_issue always passes it"
        ),
        (
            'SESSION_ENDS_PER_MESSAGE = 2  # reconnects after "421 too many messages" '
            "that cost a message no attempt",
            "2 -> 3",
        ): "a new session has delivered nothing, so one message meets one session end at most",
        ("self._bar.stop()", "`self._bar.stop()` removed"): BAR,
        (
            "self.progress.refresh()",
            "`self.progress.refresh()` removed",
        ): "progress output only (the 10 s log line is tested on _Progress itself)",
        (
            'return self._outcome(subscriber, "failed", None, None, exc.message)',
            "return value dropped (None)",
        ): "defensive: an address or name that reaches a send has passed the list's stricter checks",
        (
            "await connection.connect()",
            "`await connection.connect()` removed",
        ): "send() connects on its own when there is no connection",
        (
            "await connection.close()",
            "`await connection.close()` removed",
        ): "the connection still ends with the event loop; the server sees no QUIT",
        (
            "self.concurrency = max(1, config.email.concurrency // job.shards)",
            "1 -> 0",
        ): "a send never has more processes than connections",
        ("MAX_BACKOFF = 60.0", "60.0 -> 61.0"): TIMING,
        ("self._next = 0.0", "0.0 -> 1.0"): "the monotonic clock is far past 1 s",
        (
            "return dict(zip(COUNTERS, self.counters[:], strict=True))",
            "True -> False",
        ): "the array has one slot per counter",
        (
            "if (sys.stderr.isatty() if enabled is None else enabled) and total:",
            "is -> is not",
        ): "differs only on a terminal",
        ("transient=True,", "True -> False"): BAR,
        (
            "self._task = self._bar.add_task(name + note, total=total, sent=0, failed=0, rate=0)",
            "0 -> 1",
        ): BAR,
        (
            "self._task = self._bar.add_task(name + note, total=total, sent=0, failed=0, rate=0)",
            "0 -> 1 (same line #2)",
        ): BAR,
        (
            "self._task = self._bar.add_task(name + note, total=total, sent=0, failed=0, rate=0)",
            "0 -> 1 (same line #3)",
        ): BAR,
        ("self._bar.start()", "`self._bar.start()` removed"): BAR,
        (
            'rate = int(totals["sent"] / elapsed) if elapsed > 0 else 0',
            "0 -> 1",
        ): "the first line comes after 10 s",
        (
            'rate = int(totals["sent"] / elapsed) if elapsed > 0 else 0',
            "0 -> 1 (same line #2)",
        ): "the first line comes after 10 s",
        ("self._bar.update(", "`self._bar.update(self._task, completed=done, sent…` removed"): BAR,
        ("flush=True,", "True -> False"): "stderr is line-buffered or flushed at exit",
        (
            "queue: asyncio.Queue[Subscriber | None] = asyncio.Queue(maxsize=self.concurrency * 2)",
            "2 -> 3",
        ): "a deeper queue of recipients",
        ("break", "`break` removed"): "the producer reads on after a stop, but no worker sends",
        ("if attempt < email_cfg.max_attempts:", "< -> >="): TIMING,
        ("delay = min(MAX_BACKOFF, email_cfg.retry_base * 2 ** (attempt - 1))", "2 -> 3"): TIMING,
        ("delay = min(MAX_BACKOFF, email_cfg.retry_base * 2 ** (attempt - 1))", "1 -> 0"): TIMING,
        (
            "await asyncio.sleep(delay * random.uniform(0.5, 1.5))",
            "`await asyncio.sleep(delay * random.uniform(0.5, 1…` removed",
        ): TIMING,
        ("await asyncio.sleep(delay * random.uniform(0.5, 1.5))", "0.5 -> 1.5"): TIMING,
        ("await asyncio.sleep(delay * random.uniform(0.5, 1.5))", "1.5 -> 2.5"): TIMING,
        (
            "os._exit(1)",
            "`os._exit(1)` removed",
        ): "only a parent dead between fork and prctl, a window of microseconds",
        ("os._exit(1)", "1 -> 0"): "the exit status of an orphan nobody waits for",
    },
    "digest/send/recipients.py": {
        # _JournalStatuses.follow is a cache: answering False only makes the journal be read whole again,
        # which gives the same statuses (a line appended is always pending).
        ("return self._identity is None", "return value dropped (None)"): (
            "a missing journal read again is still missing: no statuses either way"
        ),
        ("return self._identity is None", "is -> is not"): (
            "differs only when the journal alone is deleted by hand: digest replaces it, never deletes it"
        ),
        ("return False", "return value dropped (None)"): "None is false too: the journal is read whole",
        (
            "if self._identity is None or st.st_ino != self._identity[0] or st.st_size < self._identity[1]:",
            "!= -> ==",
        ): "a replaced journal is caught by the inode check after the open, unless of the very same size",
        (
            "if self._identity is None or st.st_ino != self._identity[0] or st.st_size < self._identity[1]:",
            "< -> >=",
        ): "an appended journal is read whole (the same statuses); digest never shortens it in place",
        (
            "if self._identity is None or st.st_ino != self._identity[0] or st.st_size < self._identity[1]:",
            "0 -> 1",
        ): "the journal is always read whole: the same statuses, at more cost",
        (
            "if self._identity is None or st.st_ino != self._identity[0] or st.st_size < self._identity[1]:",
            "1 -> 0",
        ): "the journal is always read whole: the same statuses, at more cost",
        (
            "return True",
            "return value dropped (None) (same line #2)",
        ): "nothing new: the whole journal, the same",
        (
            "return True",
            "True -> False (same line #2)",
        ): "nothing new: the whole journal read again, the same",
        ("if os.fstat(handle.fileno()).st_ino != inode:", "!= -> =="): (
            "the journal is read whole after every append: the same statuses, at more cost"
        ),
        ("return False", "return value dropped (None) (same line #2)"): "None is false too",
        ("return False", "False -> True (same line #2)"): (
            "only a journal replaced between a stat and the open just after it"
        ),
        ("return True", "return value dropped (None) (same line #3)"): (
            "only a journal gone between a stat and the open just after it"
        ),
        ("return True", "True -> False (same line #3)"): (
            "only a journal gone between a stat and the open just after it"
        ),
        (
            "return True",
            "return value dropped (None)",
        ): "the new lines read, then the whole journal: the same",
        ("return True", "True -> False"): "the new lines read, then the whole journal: the same",
        ("shard: int = 0,", "0 -> 1"): "with one shard the shard is never asked for",
        (
            "self._seeded = False  # the file is still the one the new round's snapshot was read from",
            "False -> True",
        ): ("refresh() sets it before status() reads it"),
        (
            "if self.shards == 1 or self.mine(key):",
            "1 -> 0",
        ): "with one shard every key is the shard's (crc % 1 == 0)",
        ('yield Subscriber(record["email"], record.get("name", ""), sections, "active", "", 0)', "0 -> 1"): (
            "a recipient's line in the list is never read by the send"
        ),
        # the statuses read from the list, shared by the shards: without the cache each reads the file again
        (
            "elif cached is not None and cached[0] == self._signature and self._signature is not None:",
            "is not -> is (same line #2)",
        ): "the cache is never used: the same unchanged file read again, the same statuses",
        (
            "elif cached is not None and cached[0] == self._signature and self._signature is not None:",
            "0 -> 1",
        ): "the cache is never used: the same unchanged file read again, the same statuses",
        ("if listed is not None:", "is not -> is (same line #2)"): (
            "only failed reads are cached, under a signature the file no longer has or that fails again"
        ),
        # a new round's first check need not read the list its recipients were just read from
        ("if signature is not None and list_signature(path) == signature:", "`if` condition negated"): (
            "the first check reads the list the recipients were just read from: everyone due is active there"
        ),
        ("if signature is not None and list_signature(path) == signature:", "and -> or"): (
            "a list that changed meanwhile has another signature: the first check reads it anyway"
        ),
        ("if signature is not None and list_signature(path) == signature:", "is not -> is"): (
            "the first check reads the list the recipients were just read from: everyone due is active there"
        ),
        ("if signature is not None and list_signature(path) == signature:", "== -> !="): (
            "the first check reads the list the recipients were just read from: everyone due is active there"
        ),
    },
    "digest/send/session.py": {
        ("self._check()", "`self._check()` removed"): (
            "a lost connection is named by the check before the final dot instead, with the same error"
        ),
        ("self._check()", "`self._check()` removed (same line #3)"): (
            "a lost connection is named by the check before the final dot instead, with the same error"
        ),
        (
            "return isinstance(before_end, asyncio.Future) and before_end.done() and before_end.result()",
            "return value dropped (None)",
        ): "the body and its dot in two writes instead of one: the same bytes, in the same order",
        ("super().__init__(stage, code, message)", "`super().__init__(stage, code, message)` removed"): (
            "BaseException.__new__ keeps the arguments anyway; stage, code and message are set just after"
        ),
        ("self._wanted = 0", "0 -> 1"): "take() sets it before anything waits on it",
        ("self.ready.append((int(line[:3]), text))", "3 -> 4"): (
            "the fourth character of a final reply line is a space or a line ending, which int() ignores"
        ),
        ("if replies[-1][0] not in (250, 251, 354):", "354 -> 355"): (
            "354 answers DATA, the last command: there is nothing left to break out of"
        ),
        ("await self._replies.take(1, min(self.timeout, 5.0))", "5.0 -> 6.0"): (
            "a silent server is waited for one second longer at QUIT; the connection closes either way"
        ),
    },
}

CACHES = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis"}
TOP_LEVEL_SKIPPED = {".git", ".venv", "var", "feeds", "build", "dist"}  # generated, or not the project


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    skipped = CACHES | (TOP_LEVEL_SKIPPED if Path(directory) == ROOT else set())
    return {name for name in names if name in skipped or name.endswith(".egg-info")}


@dataclass(frozen=True)
class Mutant:
    """One change to one module: which node (in ``ast.walk`` order) and what is done to it."""

    module: str
    index: int
    op: str
    line: int
    change: str
    source: str  # the (first) source line of the node, stripped

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.change)


# -- the operators ---------------------------------------------------------------------------

NEGATED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
SYMBOL = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
REMOVABLE = (ast.Raise, ast.Continue, ast.Break, ast.AugAssign)


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 0 if value == 1 else value + 1
    assert isinstance(value, float)
    return value + 1.0


def _candidates(node: ast.AST) -> Iterator[tuple[str, str]]:
    """(op, change as printed) for every mutant of this node."""
    if isinstance(node, ast.Compare):
        for k, op in enumerate(node.ops):
            new = NEGATED[type(op)]
            yield f"cmp:{k}:{new.__name__}", f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"
    elif isinstance(node, ast.BoolOp):
        yield "boolop", "and -> or" if isinstance(node.op, ast.And) else "or -> and"
    elif isinstance(node, ast.If | ast.While | ast.IfExp) and not _negated_anyway(node.test):
        yield "negate", f"`{type(node).__name__.lower()}` condition negated"
    elif isinstance(node, ast.comprehension):
        for k, test in enumerate(node.ifs):
            if not _negated_anyway(test):
                yield f"negate-if:{k}", "comprehension filter negated"
    elif _is_not(node):
        yield "drop-not", "`not` dropped"
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        yield "const", f"{node.value!r} -> {_changed(node.value)!r}"
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield "return-none", "return value dropped (None)"
    elif _removable(node):
        yield "remove", f"`{_short(node)}` removed"


def _is_not(node: ast.AST) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)


def _negated_anyway(test: ast.AST) -> bool:
    """Negating this would repeat another mutant: ``not`` dropped, a one-operator comparison flipped."""
    return _is_not(test) or (isinstance(test, ast.Compare) and len(test.ops) == 1)


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _removable(node: ast.AST) -> bool:
    if isinstance(node, REMOVABLE):
        return True
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await)


def _short(node: ast.AST, width: int = 50) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= width else text[: width - 1] + "…"


def _skipped(tree: ast.Module) -> set[int]:
    """Nodes no mutant touches: docstrings, annotations, decorators, f-strings, __all__, TYPE_CHECKING."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                roots.append(body[0])
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots.extend(node.decorator_list)
            if node.returns is not None:
                roots.append(node.returns)
        if isinstance(node, ast.ClassDef):
            roots.extend(node.decorator_list)
        if isinstance(node, ast.JoinedStr):
            roots.append(node)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            roots.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            roots.append(node)
    return {id(sub) for root in roots for sub in ast.walk(root)}


def mutants(module: str, text: str) -> list[Mutant]:
    """Every mutant of one module's source, in a stable order."""
    tree = ast.parse(text)
    lines = text.splitlines()
    skipped = _skipped(tree)
    found: list[Mutant] = []
    seen: dict[tuple[str, str], int] = {}
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped:
            continue
        for op, change in _candidates(node):
            line = node.target.lineno if isinstance(node, ast.comprehension) else node.lineno  # type: ignore[attr-defined]
            source = lines[line - 1].strip()
            count = seen[(source, change)] = seen.get((source, change), 0) + 1
            label = change if count == 1 else f"{change} (same line #{count})"  # the Nth line of that text
            found.append(Mutant(module, index, op, line, label, source))
    return sorted(found, key=lambda m: (m.line, m.index, m.op))


def apply(text: str, mutant: Mutant) -> str:
    """The module's source with the mutant applied (unparsed from the changed tree)."""
    tree = ast.parse(text)
    nodes = list(ast.walk(tree))
    node = nodes[mutant.index]
    op = mutant.op
    if op.startswith("cmp:"):
        _, k, name = op.split(":")
        assert isinstance(node, ast.Compare)
        node.ops[int(k)] = getattr(ast, name)()
    elif op == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif op == "negate":
        assert isinstance(node, ast.If | ast.While | ast.IfExp)
        node.test = ast.UnaryOp(ast.Not(), node.test)
    elif op.startswith("negate-if:"):
        assert isinstance(node, ast.comprehension)
        k = int(op.split(":")[1])
        node.ifs[k] = ast.UnaryOp(ast.Not(), node.ifs[k])
    elif op == "drop-not":
        _replace(nodes, node, node.operand)  # type: ignore[attr-defined]
    elif op == "const":
        assert isinstance(node, ast.Constant)
        node.value = _changed(node.value)
    elif op == "return-none":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(None)
    elif op == "remove":
        _replace(nodes, node, ast.Pass())
    else:
        raise ValueError(f"unknown operator {op}")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _replace(nodes: list[ast.AST], old: ast.AST, new: ast.AST) -> None:
    for parent in nodes:
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[id(item) for item in value].index(id(old))] = new
                return
    raise ValueError("node not found")


# -- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    outcome: str  # killed, timeout, survived
    seconds: float


RUNNING: set[int] = set()  # process groups of the test runs under way (killed on Ctrl-C)
RUNNING_LOCK = threading.Lock()


def _kill_running() -> None:
    with RUNNING_LOCK:
        for pid in RUNNING:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


class Workspace:
    """A private copy of the repository per worker; a mutant is written into the copy only."""

    def __init__(self, base: Path, number: int):
        self.root = base / f"w{number}"
        shutil.copytree(ROOT, self.root, ignore=_copy_ignore, symlinks=True)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(self.root / "digest")], check=True
        )  # every other module loads from bytecode; the mutated one never does (see run)

    def run(
        self, module: str, text: str, tests: tuple[str, ...], timeout: float, per_test: float = 300
    ) -> tuple[str, float]:
        target = self.root / module
        target.write_text(text, encoding="utf-8")
        for stale in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
            stale.unlink()
        env = dict(os.environ)
        env.pop("DIGEST_CONFIG", None)
        env.update(PYTHONPATH=str(self.root), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # faster; tests import hypothesis
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "pytest_timeout",
            "-p",
            "no:cacheprovider",
        ]
        command += ["--timeout", str(int(per_test))]  # a test that waits forever fails sooner
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, *tests],
            cwd=self.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with RUNNING_LOCK:
            RUNNING.add(process.pid)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - started
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # and every digest it started
            process.wait()
            with RUNNING_LOCK:
                RUNNING.discard(process.pid)
        return ("survived" if code == 0 else "killed"), time.monotonic() - started


def _tests_for(module: str, override: list[str] | None = None) -> tuple[str, ...]:
    tests = tuple(override) if override else MODULES[module]
    missing = [t for t in tests if not (ROOT / t).is_file()]
    if missing:
        sys.exit(f"mutate: {module}: test file(s) missing: {', '.join(missing)}")
    return tests


def run_module(
    module: str,
    chosen: list[Mutant],
    pool: queue.Queue[Workspace],
    jobs: int,
    timeout: float | None,
    report: Callable[[Result], None],
    tests: tuple[str, ...],
) -> list[Result]:
    """The unmutated baseline, then every chosen mutant, ``jobs`` at a time."""
    text = (ROOT / module).read_text(encoding="utf-8")
    workspace = pool.get()
    try:
        identity = ast.unparse(ast.parse(text)) + "\n"  # what every mutant starts from
        outcome, seconds = workspace.run(module, identity, tests, timeout or 1800)
        (workspace.root / module).write_text(text, encoding="utf-8")
    finally:
        pool.put(workspace)
    if outcome != "survived":
        sys.exit(f"mutate: {module}: the tests fail without any mutant ({outcome}); fix them first")
    baseline = seconds  # no single test takes longer than all of them did
    limit = timeout or max(30.0, 3 * seconds + 10)
    print(f"{module}: baseline {seconds:.1f}s over {len(tests)} test files; per-mutant timeout {limit:.0f}s")

    def one(mutant: Mutant) -> Result:
        workspace = pool.get()
        try:
            outcome, seconds = workspace.run(module, apply(text, mutant), tests, limit, baseline + 30)
        finally:
            (workspace.root / module).write_text(text, encoding="utf-8")
            pool.put(workspace)
        result = Result(mutant, outcome, seconds)
        report(result)
        return result

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    try:
        return list(executor.map(one, chosen))
    except KeyboardInterrupt:
        executor.shutdown(wait=False, cancel_futures=True)
        _kill_running()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def summarize(module: str, results: list[Result], equivalent: list[Mutant]) -> tuple[int, int]:
    killed = sum(r.outcome != "survived" for r in results)
    timeouts = sum(r.outcome == "timeout" for r in results)
    total = len(results)
    score = 100.0 * killed / total if total else 100.0
    extra = f", {timeouts} by timeout" if timeouts else ""
    print(f"{module}: {killed}/{total} killed ({score:.0f}%){extra}; {len(equivalent)} equivalent left out")
    for result in results:
        if result.outcome == "survived":
            m = result.mutant
            print(f"  survived {m.where}: {m.change}    | {m.source}")
    return killed, total


def changed_lines(module: str, since: str) -> set[int]:
    """The line numbers of ``module`` added or changed since the git revision ``since``."""
    diff = subprocess.run(
        ["git", "diff", "--unified=0", since, "--", module], cwd=ROOT, capture_output=True, text=True
    )
    if diff.returncode:
        sys.exit(f"mutate: git diff {since}: {diff.stderr.strip()}")
    lines: set[int] = set()
    for hunk in diff.stdout.splitlines():
        if hunk.startswith("@@"):
            start, _, count = hunk.split("+", 1)[1].split(" ", 1)[0].partition(",")
            lines.update(range(int(start), int(start) + int(count or 1)))
    return lines


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _select(args: argparse.Namespace) -> list[str]:
    if not args.module:
        return list(MODULES)
    chosen = []
    for name in args.module:
        matches = [m for m in MODULES if m == name or Path(m).stem == name]
        if not matches:
            sys.exit(f"mutate: unknown module {name!r} (known: {', '.join(MODULES)})")
        chosen.extend(matches)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--module", action="append", help="a module path or its stem (repeatable)")
    parser.add_argument("--sample", type=int, help="run a random sample of N mutants per module")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="workers, one repository copy each")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3x the baseline + 10)")
    parser.add_argument("--tests", nargs="+", help="run these test files instead of the module's own")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--fail-under", type=float, help="exit 1 if a module scores below this percentage")
    parser.add_argument("--since", metavar="REV", help="only the lines changed since this git revision")
    args = parser.parse_args(argv)
    plan = {}
    for module in _select(args):
        every = mutants(module, (ROOT / module).read_text(encoding="utf-8"))
        known = EQUIVALENT.get(module, {})
        equivalent = [m for m in every if m.key in known]
        chosen = [m for m in every if m.key not in known]
        if args.since is not None:
            changed = changed_lines(module, args.since)
            chosen = [m for m in chosen if m.line in changed]
        if args.sample is not None and args.sample < len(chosen):
            chosen = sorted(
                random.Random(f"{args.seed}:{module}").sample(chosen, args.sample), key=lambda m: m.line
            )
        plan[module] = (chosen, equivalent)
    if args.list:
        for module, (chosen, equivalent) in plan.items():
            print(f"{module}: {len(chosen)} mutants, {len(equivalent)} equivalent left out")
            for m in chosen:
                print(f"  {m.where}: {m.change}    | {m.source}")
            for m in equivalent:
                print(f"  equivalent {m.where}: {m.change}: {EQUIVALENT[module][m.key]}")
        return 0
    jobs = max(1, args.jobs)
    started = time.monotonic()
    lock = threading.Lock()
    done = [0]
    total = sum(len(chosen) for chosen, _ in plan.values())

    def report(result: Result) -> None:
        with lock:
            done[0] += 1
            m = result.mutant
            print(
                f"  [{done[0]}/{total}] {result.outcome:8} {m.where}: {m.change} ({result.seconds:.0f}s)",
                flush=True,
            )

    scores: dict[str, tuple[int, int, list[Mutant]]] = {}
    signal.signal(signal.SIGTERM, _interrupted)  # a kill cleans up as Ctrl-C does
    base = Path(tempfile.mkdtemp(prefix="digest-mutate-"))
    try:
        pool: queue.Queue[Workspace] = queue.Queue()
        for number in range(jobs):
            pool.put(Workspace(base, number))
        for module, (chosen, equivalent) in plan.items():
            tests = _tests_for(module, args.tests)
            results = run_module(module, chosen, pool, jobs, args.timeout, report, tests)
            scores[module] = (*summarize(module, results, equivalent), equivalent)
    except KeyboardInterrupt:
        print("\nmutate: interrupted; the working files were never changed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nscores ({time.monotonic() - started:.0f}s, -j {jobs}):")
    failed = False
    for module, (killed, count, equivalent) in scores.items():
        score = 100.0 * killed / count if count else 100.0
        failed |= args.fail_under is not None and score < args.fail_under
        print(f"  {module:28} {killed:3}/{count:<3} {score:5.1f}%  ({len(equivalent)} equivalent left out)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
