"""The list's lookup index on its own: what a lookup answers, how its build fails, what it holds in memory."""

from __future__ import annotations

import errno
import os
import sqlite3
import tracemalloc

import pytest

from conftest import KNOWN
from digest.errors import SubscriberError
from digest.subscribers.changes import set_status
from digest.subscribers.index import STALE, IndexBuilder, IndexRow, _reason, index_path, lookup_index
from digest.subscribers.reading import list_signature

LIST = (
    "email,name,sections,status,since\n"
    "a@example.com,甲,papers;news,active,2026-01-01\n"
    "left@example.com,,,unsubscribed,\n"
    "odd@example.com,,nosuchsection,active,\n"
)


def test_a_lookup_answers_the_records_line_and_fields_from_the_index_as_built(tmp_path):
    path = tmp_path / "subscribers.csv"
    path.write_text(LIST, encoding="utf-8")
    set_status(path, KNOWN, "left@example.com", "bounced")  # journaled: the index is built, the list kept
    built = os.stat(index_path(path))
    signature = list_signature(path)
    assert lookup_index(path, signature, "a@example.com") == IndexRow(
        "a@example.com", 2, True, "a@example.com", "甲", "news;papers", "active", "2026-01-01"
    )
    assert lookup_index(path, signature, "left@example.com") == IndexRow(
        "left@example.com", 3, True, "left@example.com", "", "", "unsubscribed", ""
    )
    assert lookup_index(path, signature, "odd@example.com") == IndexRow("odd@example.com", 4, False)
    assert lookup_index(path, signature, "nobody@example.com") is None  # not listed, not stale
    assert os.stat(index_path(path)).st_mtime_ns == built.st_mtime_ns  # a lookup never writes it
    path.write_text(LIST + "hand@example.com,,,,\n", encoding="utf-8")  # a hand edit
    assert lookup_index(path, list_signature(path), "a@example.com") is STALE


def test_an_index_that_cannot_be_started_is_one_clear_error_naming_it(tmp_path):
    (tmp_path / "lists").write_text("a file where the list's folder should be\n", encoding="utf-8")
    path = tmp_path / "lists" / "subscribers.csv"
    with pytest.raises(SubscriberError, match=r": cannot write the list's index: \S") as caught:
        IndexBuilder(path)
    assert caught.value.path == index_path(path)


def _peak_while_building(tmp_path, rows: int) -> int:
    """The most memory Python held while ``rows`` records went into an index."""
    tracemalloc.start()
    try:
        with IndexBuilder(tmp_path / f"list{rows}.csv") as index:
            for n in range(rows):
                index.add(IndexRow(f"reader{n:07d}@example.com", n + 2, True, f"reader{n:07d}@example.com"))
            index.finish((1, 2, 3))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_building_the_index_of_a_long_list_holds_a_batch_in_memory_not_the_list(tmp_path):
    small, large = _peak_while_building(tmp_path, 20_000), _peak_while_building(tmp_path, 60_000)
    assert large < small * 1.5  # three times the records, about the same memory
    assert lookup_index(tmp_path / "list60000.csv", (1, 2, 3), "reader0059999@example.com").line == 60_001


def test_a_full_disk_under_sqlite_is_named_as_every_other_full_disk():
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA max_page_count = 2")  # SQLite's own "database or disk is full"
    db.execute("CREATE TABLE rows (value TEXT)")
    with pytest.raises(sqlite3.Error) as caught:
        db.executemany("INSERT INTO rows VALUES (?)", [("x" * 1000,)] * 100)
    db.close()
    assert _reason(caught.value) == os.strerror(errno.ENOSPC)
    assert _reason(OSError(errno.EROFS, os.strerror(errno.EROFS))) == os.strerror(errno.EROFS)
