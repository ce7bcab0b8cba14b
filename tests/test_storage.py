"""The writer thread: batches, flushes on close, survives database failures loudly."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from llm_usage import storage
from llm_usage.storage import UsageWriter, open_database


def _row(i: int) -> dict[str, object]:
    return {
        "timestamp": f"2026-11-29T00:00:{i % 60:02d}.000+00:00",
        "provider": "openai",
        "model": "m",
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "input_tokens": i,
        "output_tokens": 1,
        "total_tokens": i + 1,
        "streaming": 0,
        "status_code": 200,
    }


def _broken_database(path: Path) -> sqlite3.Connection:
    """A migrated database whose table someone then dropped under the running proxy."""
    open_database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("drop table requests")
    conn.commit()
    return conn


def test_rows_are_written_and_close_flushes_everything(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    open_database(path).close()
    writer = UsageWriter(path)
    for i in range(1234):
        writer.submit(_row(i))
    writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*), sum(input_tokens) from requests").fetchone() == (1234, sum(range(1234)))
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_flush_waits_for_rows_submitted_before_it(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit(_row(1))
    assert writer.flush(10)
    assert sqlite3.connect(path).execute("select count(*) from requests").fetchone() == (1,)
    writer.close()


def test_database_failure_is_loud_retried_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "RETRY_SECONDS", 0.05)
    path = tmp_path / "u.db"
    conn = _broken_database(path)
    writer = UsageWriter(path)
    with caplog.at_level(logging.ERROR, logger="llm_usage.storage"):
        writer.submit(_row(7))
        for _ in range(100):
            if writer.failures:
                break
            time.sleep(0.02)
    assert writer.failures >= 1
    assert any("could not write 1 row(s)" in r.getMessage() for r in caplog.records)
    # repaired: the migrations run again on reconnect and re-create the table
    conn.execute("delete from _sqlite_migrations")
    conn.commit()
    assert writer.flush(10)
    writer.close()
    assert sqlite3.connect(path).execute("select input_tokens from requests").fetchall() == [(7,)]


def test_open_database_migrates_idempotently(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    open_database(path).close()
    db = open_database(path)
    columns = set(db.table("requests").columns_dict)
    assert {"cache_read_tokens", "ttft_ms", "cost_source", "usage_status", "client", "cache_savings_usd"} <= columns
    assert {idx.columns[0] for idx in db.table("requests").indexes} >= {"timestamp", "provider", "model"}


def test_a_row_the_database_refuses_does_not_take_the_others_with_it(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit(_row(1))
    writer.submit({**_row(2), "input_tokens": 2**70})  # does not fit an SQLite integer
    writer.submit(_row(3))
    assert writer.flush(10)
    writer.submit(_row(4))  # and the writer is still alive
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (3,), (4,)] and writer.dropped == 1


def test_quitting_while_the_database_fails_says_so_and_does_not_hang(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "RETRY_SECONDS", 30.0)
    path = tmp_path / "u.db"
    _broken_database(path)
    writer = UsageWriter(path)
    with caplog.at_level(logging.ERROR, logger="llm_usage.storage"):
        for i in range(50):
            writer.submit(_row(i))
        started = time.monotonic()
        writer.close(timeout=10)
    assert time.monotonic() - started < 5  # not the 30 s retry wait
    assert any("shutting down with" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("count", [1, 2, 3, 255, 256, 257, 700])
def test_insert_rows_writes_every_row_in_order_whatever_the_batch_size(tmp_path: Path, count: int) -> None:
    """Batches go in as a few multi-row statements (powers of two, at most 256 rows each)."""
    db = open_database(tmp_path / "u.db")
    rows = [
        {**_row(i), "cost_usd": i / 7 if i % 3 else None, "error": f"e{i}" if i % 5 == 0 else None}
        for i in range(count)
    ]
    storage.insert_rows(db, rows)
    got = db.execute("select input_tokens, cost_usd, error, model from requests order by id").fetchall()
    assert got == [(r["input_tokens"], r["cost_usd"], r["error"], "m") for r in rows]
    db.close()


def test_insert_rows_respects_an_older_sqlites_parameter_limit(tmp_path: Path) -> None:
    """SQLite before 3.32 allows 999 bound parameters per statement by default."""
    db = open_database(tmp_path / "u.db")
    db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    storage.insert_rows(db, [_row(i) for i in range(300)])
    assert db.execute("select count(*), sum(input_tokens) from requests").fetchone() == (300, sum(range(300)))
    db.close()


def test_a_value_sqlite_cannot_bind_is_that_rows_fault_not_the_databases(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit(_row(1))
    writer.submit({**_row(2), "client": object()})  # sqlite3: "Error binding parameter"
    writer.submit(_row(3))
    assert writer.flush(10)
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (3,)] and writer.dropped == 1 and writer.failures == 0
