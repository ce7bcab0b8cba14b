"""The database: the writer thread (batches, flushes on close, survives failures loudly)
and the schema's migrations (a seed-era usage.db migrates forward, once)."""

from __future__ import annotations

import logging
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llm_usage.accounting.row import COLUMNS
from llm_usage.store import writer as storage
from llm_usage.store.schema import MIGRATIONS, SEED_COLUMNS, open_database
from llm_usage.store.writer import RowWriter
from llm_usage.web import queries
from llm_usage.web.params import parse_filters, parse_page, parse_series
from llm_usage.web.reader import open_read_only
from tests.support.seed_db import make_seed_db, week_of_rows


def _row(i: int) -> dict[str, object]:
    return {
        "timestamp": 1795910400.0 + i % 60,
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


class UsageWriter(RowWriter):
    """The writer, given ready rows (the proxy gives it jobs that build them)."""

    def submit_row(self, row: dict[str, object]) -> None:
        self.submit(lambda: (row, None))  # type: ignore[arg-type,return-value]


def _broken_database(path: Path) -> sqlite3.Connection:
    """A migrated database whose table someone then dropped under the running proxy."""
    open_database(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("drop table requests")
    conn.commit()
    return conn


def test_rows_are_written_and_close_flushes_everything(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    open_database(str(path)).close()
    writer = UsageWriter(path)
    for i in range(1234):
        writer.submit_row(_row(i))
    writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("select count(*), sum(input_tokens) from requests").fetchone() == (1234, sum(range(1234)))
    assert conn.execute("pragma journal_mode").fetchone()[0] == "delete"  # no -shm to be mapped (SIGBUS)


def test_flush_waits_for_rows_submitted_before_it(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(1))
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
    with caplog.at_level(logging.ERROR, logger="llm_usage.store.writer"):
        writer.submit_row(_row(7))
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


def test_a_row_the_database_refuses_does_not_take_the_others_with_it(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(1))
    writer.submit_row({**_row(2), "input_tokens": 2**70})  # does not fit an SQLite integer
    writer.submit_row(_row(3))
    assert writer.flush(10)
    writer.submit_row(_row(4))  # and the writer is still alive
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (3,), (4,)] and writer.dropped == 1


def test_quitting_while_the_database_fails_keeps_the_rows_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "RETRY_SECONDS", 30.0)
    path = tmp_path / "u.db"
    _broken_database(path)
    writer = UsageWriter(path)
    with caplog.at_level(logging.WARNING, logger="llm_usage.store.writer"):
        for i in range(50):
            writer.submit_row(_row(i))
        started = time.monotonic()
        writer.close(timeout=10)
    assert time.monotonic() - started < 5  # not the 30 s retry wait
    assert any("50 row(s) wait in" in r.getMessage() for r in caplog.records)
    # the next start, on a database that works again, writes them: each once, in order
    path.unlink()
    UsageWriter(path).close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(i,) for i in range(50)] and not (tmp_path / "u.db.pending").exists()


@pytest.mark.parametrize("count", [1, 2, 3, 255, 256, 257, 700])
def test_insert_rows_writes_every_row_in_order_whatever_the_batch_size(tmp_path: Path, count: int) -> None:
    """Batches go in as a few multi-row statements (powers of two, at most 256 rows each)."""
    db = open_database(str(tmp_path / "u.db"))
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
    db = open_database(str(tmp_path / "u.db"))
    db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    storage.insert_rows(db, [_row(i) for i in range(300)])
    assert db.execute("select count(*), sum(input_tokens) from requests").fetchone() == (300, sum(range(300)))
    db.close()


def test_a_value_sqlite_cannot_bind_is_that_rows_fault_not_the_databases(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(1))
    writer.submit_row({**_row(2), "client": object()})  # sqlite3: "Error binding parameter"
    writer.submit_row(_row(3))
    assert writer.flush(10)
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (3,)] and writer.dropped == 1 and writer.failures == 0


# ---------------------------------------------------------------- migrations

EARLIER_ROWS = [
    # rows of a release before m008 (``timestamp`` TEXT): canonical ISO, and two spellings an older writer used
    ("2026-06-01T10:15:00.250+00:00", "openai", "gpt-4o-mini", 100, 20, 0.0012, 200, None),
    ("2026-06-01 11:20:30", "anthropic", "claude-3-5-sonnet", 1000, 200, 0.006, 200, None),
    ("2026-06-02T08:00:00.123456Z", "openai", "gpt-4o", 50, 0, None, 200, None),
    ("2026-06-02T09:00:00.000+00:00", "openai", "gpt-4o", None, None, None, 500, "upstream failed"),
]


def make_earlier_db(path: Path) -> None:
    """A database as the releases before m008 made it: the seed's columns with ``timestamp`` TEXT."""
    conn = sqlite3.connect(path)
    types = {int: "INTEGER", str: "TEXT", float: "FLOAT"}
    columns = ", ".join(
        f"{name} {'TEXT' if name == 'timestamp' else types[kind]}{' PRIMARY KEY' if name == 'id' else ''}"
        for name, kind in SEED_COLUMNS.items()
    )
    conn.execute(f"CREATE TABLE requests ({columns})")
    conn.execute("CREATE INDEX idx_requests_timestamp ON requests (timestamp)")
    conn.executemany(
        "INSERT INTO requests (timestamp, provider, model, endpoint, method, input_tokens, output_tokens, "
        "total_tokens, cost_usd, duration_ms, streaming, status_code, error) "
        "VALUES (:ts, :provider, :model, '/v1/chat/completions', 'POST', :input, :output, :total, :cost, 812.5, 0, "
        ":status, :error)",
        [
            {"ts": ts, "provider": p, "model": m, "input": i, "output": o,
             "total": None if i is None else i + o, "cost": c, "status": s, "error": e}
            for ts, p, m, i, o, c, s, e in EARLIER_ROWS
        ],
    )  # fmt: skip
    conn.commit()
    conn.close()


def unix(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_an_earlier_releases_database_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    make_earlier_db(path)
    db = open_database(str(path))
    assert list(db.table("requests").columns_dict) == ["id", *COLUMNS]  # the row's keys are the columns
    assert db.table("requests").columns_dict["timestamp"] is float
    rows = list(db.query("SELECT * FROM requests ORDER BY id"))
    assert [(r["provider"], r["model"], r["input_tokens"], r["cost_usd"]) for r in rows] == [
        (p, m, i, c) for _, p, m, i, _, c, _, _ in EARLIER_ROWS
    ]
    assert all(r["client"] is None and r["usage_status"] is None for r in rows)
    # every timestamp now the seed's REAL Unix seconds, to the millisecond it was kept with
    assert [r["timestamp"] for r in rows] == [
        unix("2026-06-01T10:15:00.250"),
        unix("2026-06-01T11:20:30"),
        unix("2026-06-02T08:00:00.123"),
        unix("2026-06-02T09:00:00"),
    ]
    indexes = {tuple(index.columns) for index in db.table("requests").indexes}
    assert {("timestamp",), ("provider",), ("model",), ("provider", "timestamp"), ("client", "timestamp")} <= indexes
    hourly = db.execute("SELECT sum(requests), sum(input_tokens) FROM requests_hourly").fetchone()
    assert hourly == (4, 1150)
    # A second start runs no migration again: m008 would rewrite this text and
    # add every row to requests_hourly a second time.
    db.execute("INSERT INTO requests (timestamp, provider, input_tokens) VALUES (?, 'x', 5)", [unix("2026-06-03")])
    db.execute("INSERT INTO requests (timestamp, provider, input_tokens) VALUES ('2026-06-03 10:00:00', 'y', 7)")
    db.conn.commit()
    applied = db.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall()
    db.close()
    again = open_database(str(path))
    assert again.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall() == applied
    assert [name for (name,) in applied] == [m.name for m in MIGRATIONS._migrations]  # each once, in order
    assert again.execute("SELECT timestamp FROM requests WHERE provider = 'y'").fetchone() == ("2026-06-03 10:00:00",)
    assert again.execute("SELECT sum(requests), sum(input_tokens) FROM requests_hourly").fetchone() == (5, 1155)
    again.close()


def test_the_seeds_own_table_keeps_its_history_and_ends_uniform(tmp_path: Path) -> None:
    """The seed's exact table (REAL timestamps) that an earlier release then wrote ISO text
    into: every row ends as REAL Unix seconds, the seed's rows untouched, and a query
    written for the seed's schema counts them all."""
    path = tmp_path / "usage.db"
    now = time.time()
    seed_rows = week_of_rows(now - 86400, count=100)
    make_seed_db(path, seed_rows)
    conn = sqlite3.connect(path)  # what a release before m008 appended
    later = [now - 3600 * (i + 1) for i in range(10)]
    conn.executemany(
        "INSERT INTO requests (timestamp, provider, model, input_tokens, output_tokens, cost_usd) "
        "VALUES (?, 'openai', 'gpt-4o-mini', 10, 2, 0.001)",
        [(datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),) for at in later],
    )
    conn.commit()
    conn.close()
    db = open_database(str(path))
    kinds = db.execute("SELECT typeof(timestamp), count(*) FROM requests GROUP BY 1").fetchall()
    assert kinds == [("real", 110)]
    stored = [r[0] for r in db.execute("SELECT timestamp FROM requests ORDER BY id")]
    assert stored[:100] == [r["timestamp"] for r in seed_rows]  # the seed's own values, bit for bit
    assert stored[100:] == pytest.approx(later, abs=0.001)  # ISO kept (truncated) milliseconds
    week = "SELECT count(*) FROM requests WHERE timestamp > strftime('%s', 'now', '-8 days')"
    assert db.execute(week).fetchone()[0] == 110
    f = parse_filters({"days": "30"}, datetime.now(UTC))
    assert queries.summary(db, f)["totals"]["total_requests"] == 110
    page = queries.recent_requests(db, f, parse_page({"limit": "500"}))
    assert page["total"] == len(page["requests"]) == 110
    assert page["requests"][0]["timestamp"].endswith("+00:00")
    db.close()


def test_stats_work_on_migrated_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    make_earlier_db(path)
    open_database(str(path)).close()
    conn = open_read_only(path)
    now = datetime(2026, 6, 3, tzinfo=UTC)
    f = parse_filters({"since": "2026-06-01", "until": "2026-06-03"}, now)
    totals = queries.summary(conn, f)["totals"]
    assert totals["total_requests"] == 4
    assert totals["total_cost_usd"] == 0.0072
    assert totals["unpriced_requests"] == 1  # the gpt-4o call without a price; the 500 is an error
    assert totals["error_requests"] == 1
    assert totals["partial_requests"] == totals["missing_usage_requests"] == 0  # NULL usage_status counts as neither
    (unknown,) = queries.summary(conn, f)["by_client"]
    assert unknown["client"] is None and unknown["requests"] == 4
    models = {(m["provider"], m["model"]): m for m in queries.by_model(conn, f)["models"]}
    assert models[("openai", "gpt-4o")]["cost_usd"] is None
    page = queries.recent_requests(conn, f, parse_page({}))
    assert page["total"] == 4 and page["requests"][0]["error"] == "upstream failed"
    points = queries.timeseries(conn, f, parse_series({"bucket": "day"}), now)["points"]
    assert [p["requests"] for p in points] == [2, 2]
    # new rows written after the migration land in the rollup too
    db = open_database(str(path))
    db.table("requests").insert({"timestamp": unix("2026-06-02T10:00:00"), "provider": "gemini", "cost_usd": 0.5})
    db.close()
    assert queries.summary(conn, f)["totals"]["total_requests"] == 5
    conn.close()


def test_requests_that_owe_no_usage_stop_counting_as_failed_calls(tmp_path: Path) -> None:
    """m006: an old database's pre-connects, model lists and token counts become
    ``usage_status`` 'none' and leave the error count; the rollup is rebuilt to match,
    and its triggers count new rows the same way."""
    path = tmp_path / "usage.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE requests (id INTEGER PRIMARY KEY, timestamp TEXT, provider TEXT, model TEXT, "
                 "endpoint TEXT, method TEXT, input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER, "
                 "cost_usd FLOAT, duration_ms FLOAT, streaming INTEGER, status_code INTEGER, error TEXT)")  # fmt: skip
    old = [
        ("HEAD", "/", 404, "HTTP 404", None),  # Claude Code's pre-connect
        ("GET", "/v1/models", 401, "Incorrect API key provided", None),
        ("POST", "/v1/messages/count_tokens", 200, None, None),
        ("GET", "/v1/responses", 101, None, None),  # a whole WebSocket, before they were read
        ("POST", "/v1beta/models/gemini-2.5-pro:generateContent", 500, "HTTP 500", None),
        ("POST", "/v1/chat/completions", 200, None, 12),
    ]
    conn.executemany(
        "INSERT INTO requests (timestamp, provider, endpoint, method, status_code, error, input_tokens) "
        "VALUES ('2026-06-01T10:00:00.000+00:00', 'p', ?, ?, ?, ?, ?)",
        [(endpoint, method, status, error, tokens) for method, endpoint, status, error, tokens in old],
    )
    conn.commit()
    conn.close()
    db = open_database(str(path))
    got = db.execute("SELECT method, usage_status, error, transport FROM requests ORDER BY id").fetchall()
    assert got == [
        ("HEAD", "none", None, "http"),
        ("GET", "none", "Incorrect API key provided", "http"),
        ("POST", "none", None, "http"),
        ("GET", "missing", None, "websocket"),
        ("POST", None, "HTTP 500", "http"),
        ("POST", None, None, "http"),
    ]
    db.table("requests").insert({"timestamp": unix("2026-06-01T11:00:00"), "provider": "p", "method": "OPTIONS",
                                 "status_code": 404, "usage_status": "none"})  # fmt: skip
    db.close()
    conn = open_read_only(path)
    f = parse_filters({"since": "2026-06-01", "until": "2026-06-02"}, datetime(2026, 6, 3, tzinfo=UTC))
    totals = queries.summary(conn, f)["totals"]
    assert (totals["total_requests"], totals["error_requests"], totals["no_usage_requests"]) == (7, 1, 4)
    assert totals["missing_usage_requests"] == 1
    listed = queries.recent_requests(conn, f, parse_page({"status": "no-usage"}))
    assert listed["total"] == 4 and {r["method"] for r in listed["requests"]} == {"HEAD", "GET", "POST", "OPTIONS"}
    conn.close()


def test_the_rollup_is_rebuilt_once_and_whole_while_others_use_the_database(tmp_path: Path) -> None:
    """Two processes opening a database whose rollup is out of date (the proxy and a
    report), while a third writes rows: one rebuild, no error, no row missing from it."""
    import threading

    from llm_usage.store import rollup
    from tests.support.gen_db import generate

    path = tmp_path / "usage.db"
    generate(path, rows=20_000, seed=5)
    db = open_database(str(path))
    rollup.drop(db)  # as if its definitions had changed
    db.conn.commit()
    db.close()
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_database(str(path)).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    def write() -> None:
        conn = sqlite3.connect(path, timeout=120)
        for i in range(200):
            with conn:
                conn.execute("INSERT INTO requests (timestamp, provider, input_tokens) VALUES (?, 'w', ?)",
                             (unix("2026-11-30T10:00:00"), i))  # fmt: skip
        conn.close()

    threads = [threading.Thread(target=f) for f in (open_it, open_it, write)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    conn = sqlite3.connect(path)
    raw = conn.execute(
        "SELECT count(*), coalesce(sum(input_tokens), 0) FROM requests WHERE timestamp IS NOT NULL"
    ).fetchone()
    assert conn.execute("SELECT sum(requests), sum(input_tokens) FROM requests_hourly").fetchone() == raw
    conn.close()


def test_a_new_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    import stat

    path = tmp_path / "usage.db"
    open_database(str(path)).close()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes["usage.db"] == 0o600 and all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_a_database_deleted_while_running_is_created_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite would go on writing into the unlinked file and every later row would be gone
    without a word: the writer notices, says so, and writes into a new database."""
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(1))
    assert writer.flush(10)
    for name in ("u.db", "u.db-wal", "u.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    writer.submit_row(_row(2))
    writer.submit_row(_row(3))
    assert writer.flush(10)
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(2,), (3,)] and "was deleted or replaced; creating it again" in caplog.text


def test_the_writer_says_why_rows_cannot_be_written_until_they_can(tmp_path: Path) -> None:
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(1))
    assert writer.flush(10) and writer.problem is None
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    writer.submit_row(_row(2))
    deadline = time.monotonic() + 20
    while writer.problem is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.problem is not None and "locked" in writer.problem
    blocker.rollback()
    blocker.close()
    assert writer.flush(20) and writer.problem is None  # written at the retry; healthy again
    writer.close()


# ---------------------------------------------------------------- rows the database cannot take yet


def test_rows_a_locked_database_cannot_take_wait_in_a_file_not_in_memory(tmp_path: Path) -> None:
    """While another connection holds the database, rows go to ``u.db.pending`` within a
    moment (a kill then loses none of them), and into the database, in order and once,
    when it is free again."""
    path = tmp_path / "u.db"
    writer = UsageWriter(path)
    writer.submit_row(_row(0))
    assert writer.flush(10)
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(1, 31):
        writer.submit_row(_row(i))
    pending = tmp_path / "u.db.pending"
    deadline = time.monotonic() + 10
    while (not pending.exists() or len(pending.read_text().splitlines()) < 31) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pending.read_text().splitlines()) == 31  # an id, and the 30 rows
    assert stat.S_IMODE(pending.stat().st_mode) == 0o600
    blocker.rollback()
    blocker.close()
    assert writer.flush(20)
    writer.close()
    got = sqlite3.connect(path).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(i,) for i in range(31)] and not pending.exists()


def test_pending_rows_are_copied_once_even_if_the_proxy_dies_before_removing_the_file(tmp_path: Path) -> None:
    from llm_usage.store.spill import Spill
    from llm_usage.store.writer import _insert_one

    path = tmp_path / "u.db"
    db = open_database(str(path))
    spill = Spill(str(path))
    spill.append([_row(1), _row(2)])
    with db.conn:
        assert spill.copy_into(db.conn, lambda row: _insert_one(db.conn, row)) == 2
    # killed here: the rows are in, the file is still there
    again = Spill(str(path))
    assert again.waiting
    with db.conn:
        assert again.copy_into(db.conn, lambda row: _insert_one(db.conn, row)) == 0
    again.copied()
    assert not again.waiting and not Path(again.path).exists()
    assert db.execute("select input_tokens from requests order by id").fetchall() == [(1,), (2,)]


def test_a_line_cut_by_a_kill_is_skipped_and_the_rows_after_it_still_count(tmp_path: Path) -> None:
    from llm_usage.store.spill import Spill
    from llm_usage.store.writer import _insert_one

    path = tmp_path / "u.db"
    db = open_database(str(path))
    spill = Spill(str(path))
    spill.append([_row(1)])
    with open(spill.path, "a") as file:
        file.write('{"timestamp": 1795910400.0, "provider": "open')  # killed mid-line
    spill.append([_row(3)])
    with db.conn:
        assert spill.copy_into(db.conn, lambda row: _insert_one(db.conn, row)) == 2
    spill.copied()
    assert db.execute("select input_tokens from requests order by id").fetchall() == [(1,), (3,)]
    Path(spill.path).write_text("not ours\n")
    garbage = Spill(str(path))
    with db.conn:
        assert garbage.copy_into(db.conn, lambda row: _insert_one(db.conn, row)) == 0
    assert Path(spill.path + ".unreadable").exists() and not Path(spill.path).exists()


def test_a_database_made_again_under_the_proxy_keeps_the_proxys_key_salt(tmp_path: Path) -> None:
    """Fingerprints made with the salt the proxy started with must match what ``key-id``
    reads from the database, also after the file was deleted and made again."""
    from llm_usage.accounting.keys import database_salt

    path = tmp_path / "u.db"
    db = open_database(str(path))
    salt = database_salt(db.conn)
    db.close()
    writer = UsageWriter(path, key_salt=salt)
    writer.submit_row(_row(1))
    assert writer.flush(10)
    path.unlink()
    writer.submit_row(_row(2))
    assert writer.flush(10)
    writer.close()
    again = open_database(str(path))
    assert database_salt(again.conn, create=False) == salt
    assert again.execute("select count(*) from requests").fetchone()[0] == 1
