"""A seed-era usage.db (the seed's columns only, no migrations table) migrates forward."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from llm_usage import stats, stats_db
from llm_usage.schema import SEED_COLUMNS
from llm_usage.stats_params import parse_filters, parse_page, parse_series
from llm_usage.storage import open_database

FINAL_COLUMNS = set(SEED_COLUMNS) | {
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "ttft_ms",
    "cost_source",
    "usage_status",
    "client",
    "cache_savings_usd",
}
SEED_ROWS = [
    # the seed's own rows: canonical, and two timestamp spellings an older writer may have used
    ("2026-06-01T10:15:00.250+00:00", "openai", "gpt-4o-mini", 100, 20, 0.0012, 200, None),
    ("2026-06-01 11:20:30", "anthropic", "claude-3-5-sonnet", 1000, 200, 0.006, 200, None),
    ("2026-06-02T08:00:00.123456Z", "openai", "gpt-4o", 50, 0, None, 200, None),
    ("2026-06-02T09:00:00.000+00:00", "openai", "gpt-4o", None, None, None, 500, "upstream failed"),
]


def make_seed_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    types = {int: "INTEGER", str: "TEXT", float: "FLOAT"}
    columns = ", ".join(
        f"{name} {types[kind]}{' PRIMARY KEY' if name == 'id' else ''}" for name, kind in SEED_COLUMNS.items()
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
            for ts, p, m, i, o, c, s, e in SEED_ROWS
        ],
    )  # fmt: skip
    conn.commit()
    conn.close()


def test_seed_database_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    make_seed_db(path)
    db = open_database(path)
    assert set(db.table("requests").columns_dict) == FINAL_COLUMNS
    rows = list(db.query("SELECT * FROM requests ORDER BY id"))
    assert [(r["provider"], r["model"], r["input_tokens"], r["cost_usd"]) for r in rows] == [
        (p, m, i, c) for _, p, m, i, _, c, _, _ in SEED_ROWS
    ]
    assert all(r["client"] is None and r["usage_status"] is None for r in rows)
    # every timestamp now in the one form the stats' string ranges rely on
    assert [r["timestamp"] for r in rows] == [
        "2026-06-01T10:15:00.250+00:00",
        "2026-06-01T11:20:30.000+00:00",
        "2026-06-02T08:00:00.123+00:00",
        "2026-06-02T09:00:00.000+00:00",
    ]
    indexes = {tuple(index.columns) for index in db.table("requests").indexes}
    assert {("timestamp",), ("provider",), ("model",), ("provider", "timestamp"), ("client", "timestamp")} <= indexes
    hourly = db.execute("SELECT sum(requests), sum(input_tokens) FROM requests_hourly").fetchone()
    assert hourly == (4, 1150)
    db.close()
    open_database(path).close()  # a second start changes nothing


def test_stats_work_on_migrated_rows(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    make_seed_db(path)
    open_database(path).close()
    conn = stats_db.open_read_only(path)
    now = datetime(2026, 6, 3, tzinfo=UTC)
    f = parse_filters({"since": "2026-06-01", "until": "2026-06-03"}, now)
    totals = stats.summary(conn, f)["totals"]
    assert totals["total_requests"] == 4
    assert totals["total_cost_usd"] == 0.0072
    assert totals["unpriced_requests"] == 1  # the gpt-4o call without a price; the 500 is an error
    assert totals["error_requests"] == 1
    assert totals["partial_requests"] == totals["missing_usage_requests"] == 0  # NULL usage_status counts as neither
    (unknown,) = stats.summary(conn, f)["by_client"]
    assert unknown["client"] is None and unknown["requests"] == 4
    models = {(m["provider"], m["model"]): m for m in stats.by_model(conn, f)["models"]}
    assert models[("openai", "gpt-4o")]["cost_usd"] is None
    page = stats.recent_requests(conn, f, parse_page({}))
    assert page["total"] == 4 and page["requests"][0]["error"] == "upstream failed"
    points = stats.timeseries(conn, f, parse_series({"bucket": "day"}), now)["points"]
    assert [p["requests"] for p in points] == [2, 2]
    # new rows written after the migration land in the rollup too
    db = open_database(path)
    db.table("requests").insert({"timestamp": "2026-06-02T10:00:00.000+00:00", "provider": "gemini", "cost_usd": 0.5})
    db.close()
    assert stats.summary(conn, f)["totals"]["total_requests"] == 5
    conn.close()
