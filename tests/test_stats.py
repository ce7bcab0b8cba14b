"""The stats API's figures against plain SQL over the same known rows."""

from __future__ import annotations

import itertools
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from llm_usage.store.schema import open_database
from llm_usage.web import queries as stats
from llm_usage.web.endpoints import ENDPOINTS, Context
from llm_usage.web.params import (
    FILTER_PARAMS,
    Filters,
    Page,
    ParamError,
    Series,
    Window,
    parse_filters,
    parse_page,
    parse_series,
    single_values,
)
from llm_usage.web.reader import open_read_only

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOSTILE = "<img src=x onerror=alert(1)>"


def ts(moment: datetime) -> float:
    """A stored timestamp: Unix seconds."""
    return moment.timestamp()


def row(at: datetime, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": ts(at),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "cost_usd": 0.001,
        "duration_ms": 500.0,
        "streaming": 0,
        "status_code": 200,
        "error": None,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "ttft_ms": None,
        "cost_source": "pricing.yaml",
        "usage_status": "complete",
        "client": "curl",
        "cache_savings_usd": None,
    }
    base.update(values)
    if "total_tokens" not in values and base["input_tokens"] is not None:
        base["total_tokens"] = base["input_tokens"] + (base["output_tokens"] or 0)
    return base


def known_rows() -> list[dict[str, Any]]:
    """Every kind of row the recorder writes, over two weeks and a few providers."""
    rng = random.Random(4)
    rows = []
    providers = {
        "openai": ["gpt-4o-mini", "gpt-5"],
        "anthropic": ["claude-sonnet-4-5", HOSTILE],
        "ollama": ["llama3.2"],
        "openrouter": ["mistralai/devstral"],
    }
    clients = ["Claude Code", "Cline", "OpenAI Python SDK", "curl", "other", None]
    for i in range(600):
        at = NOW - timedelta(minutes=rng.randrange(14 * 24 * 60), seconds=rng.random() * 60)
        provider = rng.choice(list(providers))
        model = rng.choice(providers[provider])
        kind = rng.random()
        values: dict[str, Any] = {
            "provider": provider,
            "model": model,
            "client": rng.choice(clients),
            "input_tokens": rng.randrange(1, 5000),
            "output_tokens": rng.randrange(0, 900),
            "cost_usd": round(rng.random() / 50, 9),
            "streaming": int(rng.random() < 0.5),
            "duration_ms": rng.random() * 4000,
        }
        if provider == "ollama":
            values["cost_usd"] = 0.0
        if provider == "anthropic":
            values.update(cache_read_tokens=rng.randrange(0, 500), cache_write_tokens=rng.randrange(0, 100))
            values["cache_savings_usd"] = values["cache_read_tokens"] * 2.7e-6
        if model == "gpt-5":
            values["reasoning_tokens"] = rng.randrange(0, 300)
        if provider == "openrouter" or (i % 37 == 0):
            values.update(cost_usd=None, cost_source=None)  # unpriced
        if kind < 0.05:
            values.update(status_code=429, error="rate limited", input_tokens=None, output_tokens=None,
                          total_tokens=None, cost_usd=None, cost_source=None, usage_status=None)  # fmt: skip
        elif kind < 0.08:
            values.update(error="client disconnected", usage_status="partial", streaming=1)
        elif kind < 0.11:
            values.update(usage_status="missing", input_tokens=None, output_tokens=None, total_tokens=None,
                          cost_usd=None, cost_source=None)  # fmt: skip
        elif kind < 0.12:
            values.update(status_code=500, error=None)  # an error status without a message
        elif kind < 0.15:
            values.update(usage_status="invalid", input_tokens=None, cost_usd=None, cost_source=None,
                          error="the provider's usage cannot be true: prompt_tokens = -5")  # fmt: skip
        rows.append(row(at, **values))
    rows.sort(key=lambda r: r["timestamp"])
    return rows


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stats") / "usage.db"
    db = open_database(path)
    db.table("requests").insert_all(known_rows())
    db.close()
    return path


@pytest.fixture
def conn(db_path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    yield c
    c.close()


def filters(**values: str) -> Filters:
    return parse_filters(values, NOW)


def sql_one(conn: sqlite3.Connection, sql: str, params: dict[str, Any] | None = None) -> Any:
    return conn.execute(sql, params or {}).fetchone()


ERROR_SQL = "(error IS NOT NULL OR status_code >= 400)"
UNPRICED_SQL = f"(cost_usd IS NULL AND NOT {ERROR_SQL} AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL))"


def expected_group(conn: sqlite3.Connection, where: str = "1", params: dict[str, Any] | None = None) -> dict[str, Any]:
    r = sql_one(
        conn,
        f"""SELECT count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
        coalesce(sum(total_tokens), 0), sum(cost_usd), count(cost_usd),
        coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0),
        coalesce(sum(cache_savings_usd), 0),
        coalesce(sum({UNPRICED_SQL}), 0), coalesce(sum({ERROR_SQL}), 0),
        coalesce(sum(usage_status = 'partial'), 0), coalesce(sum(usage_status = 'missing'), 0),
        coalesce(sum(usage_status = 'invalid'), 0)
        FROM requests WHERE {where}""",
        params,
    )
    return {
        "requests": r[0],
        "input_tokens": r[1],
        "output_tokens": r[2],
        "total_tokens": r[3],
        "cost_usd": r[4] if r[5] or not r[0] else None,
        "priced_requests": r[5],
        "cache_read_tokens": r[6],
        "cache_write_tokens": r[7],
        "reasoning_tokens": r[8],
        "cache_savings_usd": r[9],
        "unpriced_requests": r[10],
        "error_requests": r[11],
        "partial_requests": r[12],
        "missing_usage_requests": r[13],
        "invalid_usage_requests": r[14],
    }


def assert_figures(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key in ("cost_usd", "total_cost_usd", "cache_savings_usd") and value is not None:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
        else:
            assert got[key] == value, key


# ---------------------------------------------------------------- figures vs SQL


def test_summary_totals_match_sql(conn: sqlite3.Connection) -> None:
    result = stats.summary(conn, filters())
    totals = result["totals"]
    expected = expected_group(conn)
    assert expected["requests"] == 600
    renamed = {
        "total_requests": expected.pop("requests"),
        "total_input_tokens": expected.pop("input_tokens"),
        "total_output_tokens": expected.pop("output_tokens"),
        "total_tokens": expected.pop("total_tokens"),
        "total_cost_usd": expected.pop("cost_usd"),
    }
    assert_figures(totals, {**renamed, **expected})
    assert totals["unpriced_requests"] > 0 and totals["error_requests"] > 0 and totals["partial_requests"] > 0
    assert sum(p["requests"] for p in result["by_provider"]) == 600
    assert sum(c["requests"] for c in result["by_client"]) == 600


@pytest.mark.parametrize("days", ["1", "3", "7", "30"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"])
def test_days_are_calendar_days_in_tz(conn: sqlite3.Connection, days: str, tz: str) -> None:
    f = filters(days=days, tz=tz)
    local_today = NOW.astimezone(ZoneInfo(tz)).date()
    since = datetime.combine(local_today - timedelta(days=int(days) - 1), datetime.min.time(), ZoneInfo(tz))
    assert f.window.since == since.astimezone(UTC)
    got = stats.summary(conn, f)["totals"]
    want = expected_group(conn, "timestamp >= :s", {"s": ts(since)})
    assert got["total_requests"] == want["requests"]
    assert got["total_cost_usd"] == pytest.approx(want["cost_usd"])


def test_by_provider_model_client_match_group_by(conn: sqlite3.Connection) -> None:
    f = filters(days="7", tz="Europe/Berlin")
    since = ts(f.window.since)  # type: ignore[arg-type]
    models = stats.by_model(conn, f)["models"]
    pairs = conn.execute("SELECT DISTINCT provider, model FROM requests WHERE timestamp >= :s", {"s": since}).fetchall()
    assert {(m["provider"], m["model"]) for m in models} == set(pairs)
    for m in models:
        want = expected_group(conn, "timestamp >= :s AND provider = :p AND model = :m",
                              {"s": since, "p": m["provider"], "m": m["model"]})  # fmt: skip
        assert_figures(m, want)
    for c in stats.by_client(conn, f)["clients"]:
        where = "client IS NULL" if c["client"] is None else "client = :c"
        assert_figures(c, expected_group(conn, f"timestamp >= :s AND {where}", {"s": since, "c": c["client"]}))
    for p in stats.by_provider(conn, f)["providers"]:
        assert_figures(p, expected_group(conn, "timestamp >= :s AND provider = :p", {"s": since, "p": p["provider"]}))


def test_filters_combine(conn: sqlite3.Connection) -> None:
    f = filters(provider="anthropic", model=HOSTILE, client="Cline")
    got = stats.summary(conn, f)["totals"]
    want = expected_group(conn, "provider = 'anthropic' AND model = :m AND client = 'Cline'", {"m": HOSTILE})
    assert got["total_requests"] == want["requests"] > 0
    (only,) = stats.by_model(conn, f)["models"]
    assert only["model"] == HOSTILE


def test_unpriced_groups_report_null_cost_not_zero(conn: sqlite3.Connection) -> None:
    (openrouter,) = stats.by_provider(conn, filters(provider="openrouter"))["providers"]
    assert openrouter["cost_usd"] is None and openrouter["priced_requests"] == 0
    assert openrouter["unpriced_requests"] > 0
    (ollama,) = stats.by_provider(conn, filters(provider="ollama"))["providers"]
    assert ollama["cost_usd"] == 0.0 and ollama["priced_requests"] > 0  # a real 0, from a price of 0


def test_sorted_by_cost_then_requests(conn: sqlite3.Connection) -> None:
    providers = stats.summary(conn, filters())["by_provider"]
    costs = [p["cost_usd"] or 0 for p in providers]
    assert costs == sorted(costs, reverse=True)


def test_ties_are_broken_by_requests_then_name() -> None:
    """Same cost: more requests first; same cost and requests: by name; unpriced last.

    ``alpha`` falls in the window's partial first hour, read from ``requests``, the others in
    whole hours read from the rollup first: the groups come out of SQL in another order."""
    db = open_database(":memory:")
    rows = [("zeta", 1.0), ("alpha", 1.0), ("beta", 0.5), ("beta", 0.5), ("gamma", 1.0), ("mute", None)]
    db.table("requests").insert_all(
        {
            "timestamp": ts(
                datetime(2026, 11, 28, 9, 45, tzinfo=UTC)
                if name == "alpha"
                else datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
            ),
            "provider": name,
            "input_tokens": 1,
            "cost_usd": cost,
        }
        for name, cost in rows
    )
    window = filters(since="2026-11-28T09:30:00Z")
    order = [(p["provider"], p["cost_usd"], p["requests"]) for p in stats.by_provider(db, window)["providers"]]
    assert order == [("beta", 1.0, 2), ("alpha", 1.0, 1), ("gamma", 1.0, 1), ("zeta", 1.0, 1), ("mute", None, 1)]


# ---------------------------------------------------------------- the rollup adds up


def test_rollup_and_raw_rows_agree_on_random_ranges(conn: sqlite3.Connection) -> None:
    rng = random.Random(11)
    start = NOW - timedelta(days=15)
    for _ in range(40):
        a = start + timedelta(seconds=rng.randrange(16 * 86400), microseconds=rng.randrange(10**6))
        b = a + timedelta(seconds=rng.randrange(1, 5 * 86400))
        bucket_count = rng.randrange(1, 6)
        edges = sorted({a, b, *(a + (b - a) * rng.random() for _ in range(bucket_count - 1))})
        buckets = list(itertools.pairwise(edges))
        f = Filters(window=Window(), provider=rng.choice([None, "openai", "anthropic"]))
        group = rng.choice([(), ("model",), ("provider", "client")])
        fast = stats.aggregate(conn, f, buckets, group)
        slow = stats.aggregate(conn, f, buckets, group, use_rollup=False)
        assert {k: stats.figures(v) for k, v in fast.items() if v["requests"]} == {
            k: stats.figures(v) for k, v in slow.items()
        }


def test_rollup_follows_deletes_and_updates(tmp_path: Path) -> None:
    db = open_database(tmp_path / "u.db")
    db.table("requests").insert_all(known_rows()[:200])
    db.execute("DELETE FROM requests WHERE id % 3 = 0")
    db.execute("UPDATE requests SET provider = 'zai', cost_usd = NULL WHERE id % 5 = 0")
    db.conn.commit()
    everything = [(None, None)]
    for group in [(), ("provider",), ("provider", "model", "client")]:
        fast = stats.aggregate(db.conn, Filters(), everything, group)
        slow = stats.aggregate(db.conn, Filters(), everything, group, use_rollup=False)
        assert {k: stats.figures(v) for k, v in fast.items() if v["requests"]} == {
            k: stats.figures(v) for k, v in slow.items()
        }
    assert all(p["requests"] > 0 for p in stats.by_provider(db, Filters())["providers"])


# ---------------------------------------------------------------- the request log


def test_requests_page_newest_first_with_total(conn: sqlite3.Connection) -> None:
    page1 = stats.recent_requests(conn, filters(), parse_page({"limit": "50"}))
    page2 = stats.recent_requests(conn, filters(), parse_page({"limit": "50", "offset": "50"}))
    ids = [r[0] for r in conn.execute("SELECT id FROM requests ORDER BY timestamp DESC, id DESC LIMIT 100")]
    assert [r["id"] for r in page1["requests"] + page2["requests"]] == ids
    assert page1["total"] == 600 and (page1["limit"], page1["offset"]) == (50, 0)
    first = page1["requests"][0]
    assert set(first) >= {"timestamp", "provider", "model", "endpoint", "cost_usd", "client", "usage_status"}
    last = stats.recent_requests(conn, filters(), parse_page({"limit": "500", "offset": "590"}))
    assert len(last["requests"]) == 10


@pytest.mark.parametrize(
    ("status", "where"),
    [
        ("error", ERROR_SQL),
        ("unpriced", UNPRICED_SQL),
        ("partial", "usage_status = 'partial'"),
        ("missing", "usage_status = 'missing'"),
        ("invalid", "usage_status = 'invalid'"),
    ],
)
def test_requests_status_filter(conn: sqlite3.Connection, status: str, where: str) -> None:
    got = stats.recent_requests(conn, filters(provider="openai"), parse_page({"status": status, "limit": "500"}))
    want = [r[0] for r in conn.execute(
        f"SELECT id FROM requests WHERE provider = 'openai' AND {where} ORDER BY timestamp DESC, id DESC")]  # fmt: skip
    assert [r["id"] for r in got["requests"]] == want and got["total"] == len(want) > 0


def test_requests_since_until(conn: sqlite3.Connection) -> None:
    since, until = "2026-11-20T10:00:00+01:00", "2026-11-22"
    got = stats.recent_requests(conn, filters(since=since, until=until), parse_page({"limit": "500"}))
    want = conn.execute(
        "SELECT count(*) FROM requests WHERE timestamp >= :s AND timestamp < :u",
        {"s": ts(datetime(2026, 11, 20, 9, tzinfo=UTC)), "u": ts(datetime(2026, 11, 22, tzinfo=UTC))},
    ).fetchone()[0]
    assert got["total"] == len(got["requests"]) == want > 0


# ---------------------------------------------------------------- time buckets


def test_timeseries_days_sum_to_the_window(conn: sqlite3.Connection) -> None:
    f = parse_filters({"days": "14", "tz": "Europe/Berlin"}, NOW, default_days=30)
    series = stats.timeseries(conn, f, parse_series({}), NOW)
    assert len(series["points"]) == 14
    assert series["points"][0]["start"].endswith("+01:00") and series["points"][-1]["start"].startswith("2026-11-29")
    total = expected_group(conn, "timestamp >= :s", {"s": ts(f.window.since)})  # type: ignore[arg-type]
    assert sum(p["requests"] for p in series["points"]) == total["requests"]
    assert sum(p["output_tokens"] for p in series["points"]) == total["output_tokens"]


def test_timeseries_default_is_30_days() -> None:
    empty = open_database(":memory:")
    series = stats.timeseries(empty, parse_filters({}, NOW, default_days=30), parse_series({}), NOW)
    assert len(series["points"]) == 30 and all(p["requests"] == 0 and p["cost_usd"] == 0 for p in series["points"])


DST_INSTANTS = [
    # (UTC instant, New York local day it belongs to)
    ("2026-03-08T04:59:59.999", "2026-03-07"),  # 23:59:59.999 EST
    ("2026-03-08T05:00:00.000", "2026-03-08"),  # midnight EST
    ("2026-03-08T06:59:00.000", "2026-03-08"),  # 01:59 EST, just before the clocks jump
    ("2026-03-08T07:00:00.000", "2026-03-08"),  # 03:00 EDT
    ("2026-03-09T03:59:00.000", "2026-03-08"),  # 23:59 EDT: the 23-hour day ends at 04:00Z
    ("2026-03-09T04:00:00.000", "2026-03-09"),
    ("2026-11-01T03:59:00.000", "2026-10-31"),
    ("2026-11-01T04:00:00.000", "2026-11-01"),  # midnight EDT
    ("2026-11-01T05:30:00.000", "2026-11-01"),  # 01:30 EDT
    ("2026-11-01T06:30:00.000", "2026-11-01"),  # 01:30 EST, the repeated hour
    ("2026-11-02T04:59:00.000", "2026-11-01"),  # 23:59 EST: the 25-hour day ends at 05:00Z
    ("2026-11-02T05:00:00.000", "2026-11-02"),
]


@pytest.fixture(scope="module")
def dst_conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    db = open_database(tmp_path_factory.mktemp("dst") / "dst.db")
    db.table("requests").insert_all(
        row(datetime.fromisoformat(at + "+00:00"), input_tokens=i + 1, output_tokens=0)
        for i, (at, _) in enumerate(DST_INSTANTS)
    )
    db.conn.commit()
    return db.conn


@pytest.mark.parametrize("use_rollup", [True, False])
def test_day_buckets_across_dst_in_new_york(dst_conn: sqlite3.Connection, use_rollup: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not use_rollup:
        monkeypatch.setattr(stats, "has_table", lambda conn, name: False)
    for first, last in (("2026-03-06", "2026-03-11"), ("2026-10-30", "2026-11-04")):
        f = parse_filters({"since": first, "until": last, "tz": "America/New_York"}, NOW)
        points = stats.timeseries(dst_conn, f, parse_series({"bucket": "day"}), NOW)["points"]
        days = [p["start"][:10] for p in points]
        assert days == [(datetime.fromisoformat(first) + timedelta(days=n)).date().isoformat() for n in range(5)]
        by_day = {p["start"][:10]: p["input_tokens"] for p in points}
        for i, (_, day) in enumerate(DST_INSTANTS):
            if first <= day < last:
                by_day[day] -= i + 1
        assert all(v == 0 for v in by_day.values()), by_day
        starts = {p["start"][:10]: datetime.fromisoformat(p["start"]) for p in points}
        lengths = {d: (starts[n] - starts[d]) for d, n in itertools.pairwise(days)}
        if first.startswith("2026-03"):
            assert lengths["2026-03-08"] == timedelta(hours=23)
        else:
            assert lengths["2026-11-01"] == timedelta(hours=25)


def test_hour_buckets_follow_the_local_clock(dst_conn: sqlite3.Connection) -> None:
    fall = parse_filters({"since": "2026-11-01T00:00", "until": "2026-11-01T04:00", "tz": "America/New_York"}, NOW)
    points = stats.timeseries(dst_conn, fall, parse_series({"bucket": "hour"}), NOW)["points"]
    starts = [p["start"] for p in points]
    assert starts == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",  # the repeated hour is its own bucket
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]
    assert [p["requests"] for p in points] == [1, 1, 1, 0, 0]
    spring = parse_filters({"since": "2026-03-08T00:00", "until": "2026-03-08T05:00", "tz": "America/New_York"}, NOW)
    points = stats.timeseries(dst_conn, spring, parse_series({"bucket": "hour"}), NOW)["points"]
    assert [p["start"][11:] for p in points] == [
        "00:00:00-05:00", "01:00:00-05:00", "03:00:00-04:00", "04:00:00-04:00",  # no 02:00
    ]  # fmt: skip
    assert [p["requests"] for p in points] == [1, 1, 1, 0]


def test_half_hour_zone_buckets(conn: sqlite3.Connection) -> None:
    f = parse_filters({"days": "5", "tz": "Asia/Kolkata"}, NOW)
    for bucket in ("day", "hour"):
        points = stats.timeseries(conn, f, parse_series({"bucket": bucket}), NOW)["points"]
        assert all(p["start"].endswith("+05:30") for p in points)
        assert (
            sum(p["requests"] for p in points)
            == expected_group(
                conn,
                "timestamp >= :s",
                {"s": ts(f.window.since)},  # type: ignore[arg-type]
            )["requests"]
        )


@pytest.mark.parametrize("bucket", ["week", "month"])
def test_week_and_month_buckets_are_calendar_periods_in_the_zone(conn: sqlite3.Connection, bucket: str) -> None:
    """ISO weeks start on a local Monday, months on the local 1st; each point sums its period."""
    f = parse_filters({"days": "60", "tz": "America/New_York"}, NOW)
    points = stats.timeseries(conn, f, parse_series({"bucket": bucket}), NOW)["points"]
    starts = [datetime.fromisoformat(p["start"]) for p in points]
    assert all(s.hour == 0 and s.minute == 0 for s in starts)
    assert all((s.weekday() == 0) if bucket == "week" else (s.day == 1) for s in starts[1:])
    ends = [*starts[1:], None]
    for point, start, end in zip(points, starts, ends, strict=True):
        low = max(start, f.window.since)  # type: ignore[type-var]
        where, params = "timestamp >= :low", {"low": ts(low)}
        if end is not None:
            where, params = where + " AND timestamp < :high", {**params, "high": ts(end)}
        assert point["requests"] == expected_group(conn, where, params)["requests"]
        assert point["cost_usd"] == pytest.approx(expected_group(conn, where, params)["cost_usd"] or 0)


def test_too_many_points_is_a_parameter_error(conn: sqlite3.Connection) -> None:
    f = parse_filters({"since": "2000-01-01"}, NOW)
    with pytest.raises(ParamError, match=r"^bucket"):
        stats.timeseries(conn, f, parse_series({"bucket": "hour"}), NOW)


# ---------------------------------------------------------------- parameters


BAD = [
    ("summary", "days=0", "days"),
    ("summary", "days=-1", "days"),
    ("summary", "days=abc", "days"),
    ("summary", "days=1.5", "days"),
    ("summary", "days=99999", "days"),
    ("summary", "days=", "days"),
    ("summary", "tz=Mars/Olympus", "tz"),
    ("summary", "tz=../../etc/passwd", "tz"),
    ("summary", "tz=", "tz"),
    ("summary", "since=yesterday", "since"),
    ("summary", "until=2026-13-01", "until"),
    ("summary", "since=2026-11-02&until=2026-11-01", "since"),
    ("summary", "days=3&since=2026-11-01", "days"),
    ("summary", "provider=", "provider"),
    ("summary", "model=" + "x" * 300, "model"),
    ("summary", "client=a%00b", "client"),
    ("summary", "limit=5", "'limit'"),
    ("summary", "provider=a&provider=b", "provider"),
    ("by-model", "bucket=day", "'bucket'"),
    ("by-client", "days=x", "days"),
    ("requests", "limit=0", "limit"),
    ("requests", "limit=501", "limit"),
    ("requests", "limit=ten", "limit"),
    ("requests", "offset=-1", "offset"),
    ("requests", "offset=1e3", "offset"),
    ("requests", "status=fine", "status"),
    ("timeseries", "bucket=fortnight", "bucket"),
    ("timeseries", "bucket=", "bucket"),
    ("timeseries", "tz=Not/AZone", "tz"),
    ("timeseries", "nonsense=1", "'nonsense'"),
    ("summary", "project=-leading-dash", "project"),
    ("by-model", "project=a/b", "project"),
    ("by-key", "key=sk-live-123", "key"),
    ("by-key", "key=key-XYZ", "key"),
    ("requests", "session=has space", "session"),
    ("by-session", "session=" + "s" * 129, "session"),
    ("by-session", "limit=0", "limit"),
    ("by-session", "status=error", "'status'"),
    ("by-project", "days=0", "days"),
]


def _parse(endpoint: str, query: str) -> None:
    from urllib.parse import parse_qsl

    spec = ENDPOINTS[endpoint]
    spec.prepare(single_values(parse_qsl(query, keep_blank_values=True), spec.params), NOW, Context())


@pytest.mark.parametrize(("endpoint", "query", "name"), BAD)
def test_every_bad_parameter_is_named(endpoint: str, query: str, name: str) -> None:
    with pytest.raises(ParamError) as error:
        _parse(endpoint, query)
    assert str(error.value).startswith(name)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", Filters()),
        ("days=1", Filters(Window(since=_utc(2026, 11, 29)))),  # today so far (NOW is 2026-11-29 12:00 UTC)
        ("days=3660", Filters(Window(since=_utc(2016, 11, 22)))),  # 3,659 days back: two of them Feb 29
        # 7 calendar days in New York: from midnight EST on the 23rd, 05:00 UTC
        ("tz=America/New_York&days=7", Filters(Window(since=_utc(2026, 11, 23, 5), tz=ZoneInfo("America/New_York")))),
        ("since=2026-11-01&until=2026-11-02T12:30:00Z", Filters(Window(_utc(2026, 11, 1), _utc(2026, 11, 2, 12, 30)))),
        ("since=2026-11-01T10:00:00.123456+05:30", Filters(Window(since=_utc(2026, 11, 1, 4, 30, 0, 123456)))),
        ("since=2026-11-01T10:00:00%2B05:30", Filters(Window(since=_utc(2026, 11, 1, 4, 30)))),
        ("since=2026-11-01T10:00:00+05:30", Filters(Window(since=_utc(2026, 11, 1, 4, 30)))),  # "+" read as " "
        (
            "tz=Asia/Kolkata&since=2026-11-01",
            Filters(Window(since=_utc(2026, 10, 31, 18, 30), tz=ZoneInfo("Asia/Kolkata"))),
        ),
        (
            "provider=openai&model=gpt-5&client=Claude Code",
            Filters(provider="openai", model="gpt-5", client="Claude Code"),
        ),
    ],
)
def test_good_parameters_are_read_as_meant(query: str, expected: Filters) -> None:
    from urllib.parse import parse_qsl

    _parse("summary", query)  # and the endpoint accepts them
    assert parse_filters(single_values(parse_qsl(query, keep_blank_values=True), FILTER_PARAMS), NOW) == expected


def test_page_and_series_parameters_are_read_as_meant() -> None:
    assert parse_page({"limit": "500", "offset": "20", "status": "partial"}) == Page(500, 20, "partial")
    assert parse_page({}) == Page(50, 0, None)
    assert parse_series({"bucket": "hour"}) == Series("hour") and parse_series({}) == Series("day")


@pytest.mark.parametrize(
    "hostile",
    ["openai' OR '1'='1", 'x" OR 1=1 --', "'; DROP TABLE requests; --", "%' OR provider LIKE '%", HOSTILE + "'"],
)
def test_injection_attempts_match_nothing(conn: sqlite3.Connection, hostile: str) -> None:
    for key in ("provider", "model", "client"):
        f = filters(**{key: hostile})
        assert stats.summary(conn, f)["totals"]["total_requests"] == 0
        assert stats.by_model(conn, f)["models"] == []
        page = stats.recent_requests(conn, f, parse_page({}))
        assert page["requests"] == [] and page["total"] == 0
        assert sum(p["requests"] for p in stats.timeseries(conn, f, parse_series({}), NOW)["points"]) == 0
    assert sql_one(conn, "SELECT count(*) FROM requests")[0] == 600


def test_hostile_names_come_back_verbatim(conn: sqlite3.Connection) -> None:
    page = stats.recent_requests(conn, filters(model=HOSTILE), parse_page({}))
    assert page["total"] > 0 and all(r["model"] == HOSTILE for r in page["requests"])


def test_empty_database_gives_zeros() -> None:
    empty = open_database(":memory:")
    totals = stats.summary(empty, filters())["totals"]
    assert totals["total_requests"] == 0 and totals["total_cost_usd"] == 0 and totals["unpriced_requests"] == 0
    assert stats.by_model(empty, filters())["models"] == []
    assert stats.recent_requests(empty, filters(), parse_page({}))["total"] == 0
    assert stats.health(empty) == {"ok": True, "database": "ok"}
    assert stats.health(None)["ok"] is True


def test_a_bound_includes_the_row_stored_at_its_instant() -> None:
    """Bounds and rows are the same Unix seconds: ``since`` includes a row at that very
    instant and ``until`` excludes it (``[since, until)``), to the microsecond."""
    at = datetime(2026, 11, 25, 8, 30, 15, 123456, tzinfo=UTC)
    db = open_database(":memory:")
    db.table("requests").insert(row(at))
    first = stats.recent_requests(db, filters(since=at.isoformat()), parse_page({}))
    assert first["total"] == 1 and first["requests"][0]["timestamp"] == "2026-11-25T08:30:15.123+00:00"
    assert stats.recent_requests(db, filters(until=at.isoformat()), parse_page({}))["total"] == 0
    assert stats.summary(db, filters(since=at.isoformat()))["totals"]["total_requests"] == 1


# ---------------------------------------------------------------- sessions, projects, keys


@pytest.fixture(scope="module")
def attributed(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    """Three sessions over two days (one with a subagent), two projects, two keys, and calls
    that belong to none of them."""
    path = tmp_path_factory.mktemp("who") / "usage.db"
    db = open_database(str(path))
    rng = random.Random(13)
    rows = []
    for i in range(400):
        at = NOW - timedelta(minutes=rng.randrange(3 * 24 * 60), seconds=rng.random() * 60)
        session = rng.choice(["s-alpha", "s-beta", "s-gamma", None])
        rows.append(row(at, session_id=session, subagent="review" if session == "s-beta" and i % 3 == 0 else None,
                        project=rng.choice(["webshop", "blog", None]),
                        key_id=rng.choice(["key-0000aaaa", "key-1111bbbb"]),
                        model=rng.choice(["gpt-5", "gpt-4o-mini"]), client="Codex CLI" if session else "curl",
                        cost_usd=round(rng.random() / 100, 8)))  # fmt: skip
    db.table("requests").insert_all(rows)
    db.close()
    return sqlite3.connect(path)


@pytest.mark.parametrize("use_rollup", [True, False])
def test_by_session_matches_sql(attributed: sqlite3.Connection, use_rollup: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not use_rollup:
        monkeypatch.setattr(stats, "has_table", lambda conn, name: False)
    f = filters(since="2026-11-27T09:30:00Z")  # a partial first hour: raw rows and rollup hours both
    got = stats.by_session(attributed, f, parse_page({}))
    sql = ("SELECT session_id, count(*), sum(cost_usd), min(timestamp), max(timestamp), "
           "sum(subagent IS NOT NULL), count(DISTINCT model) FROM requests "
           "WHERE session_id IS NOT NULL AND timestamp >= :s "
           "GROUP BY session_id ORDER BY max(timestamp) DESC")  # fmt: skip
    want = attributed.execute(sql, {"s": ts(f.window.since)}).fetchall()  # type: ignore[arg-type]
    assert got["total_sessions"] == len(want) == 3
    for session, expected in zip(got["sessions"], want, strict=True):
        name, count, cost, first, last, by_subagent, models = expected
        assert session["session_id"] == name and session["requests"] == count
        assert session["cost_usd"] == pytest.approx(cost)
        assert session["first_call"] == datetime.fromtimestamp(first, UTC).isoformat(timespec="milliseconds")
        assert session["duration_s"] == pytest.approx(last - first, abs=1e-3)
        assert session["subagent_requests"] == by_subagent and len(session["models"]) == models
        assert session["client"] == "Codex CLI" and session["project"] in ("webshop", "blog")
    beta = next(s for s in got["sessions"] if s["session_id"] == "s-beta")
    assert 0 < beta["subagent_share"] < 1
    page = stats.by_session(attributed, f, parse_page({"limit": "1", "offset": "1"}))
    assert [s["session_id"] for s in page["sessions"]] == [want[1][0]]


def test_session_project_and_key_filter_every_figure(attributed: sqlite3.Connection) -> None:
    for field, column, value in (("session", "session_id", "s-beta"), ("project", "project", "webshop"),
                                 ("key", "key_id", "key-1111bbbb")):  # fmt: skip
        f = filters(days="7", **{field: value})
        want = expected_group(attributed, f"timestamp >= :s AND {column} = :v", {"s": ts(f.window.since), "v": value})  # type: ignore[arg-type]
        totals = stats.summary(attributed, f)["totals"]
        assert totals["total_requests"] == want["requests"] > 0
        assert totals["total_cost_usd"] == pytest.approx(want["cost_usd"])
        assert stats.recent_requests(attributed, f, parse_page({}))["total"] == want["requests"]
        series = stats.timeseries(attributed, f, parse_series({}), NOW)
        assert sum(p["requests"] for p in series["points"]) == want["requests"]


def test_by_project_and_by_key(attributed: sqlite3.Connection) -> None:
    f = filters(days="7")
    projects = {p["project"]: p["requests"] for p in stats.by_project(attributed, f)["projects"]}
    assert projects == dict(attributed.execute("SELECT project, count(*) FROM requests GROUP BY project").fetchall())
    keys = stats.by_key(attributed, f, {"key-0000aaaa": "alice"})["keys"]
    assert {(k["key_id"], k["label"]) for k in keys} == {("key-0000aaaa", "alice"), ("key-1111bbbb", None)}
    assert sum(k["requests"] for k in keys) == 400


def test_kept_sums_of_the_past_follow_every_change_to_it(tmp_path: Path) -> None:
    """Yesterday's sums are kept between requests (web/past_cache.py), and read again when
    a row is written into the past, or one is deleted or changed."""
    from llm_usage.web.past_cache import PAST

    PAST.clear()
    db = open_database(str(tmp_path / "u.db"))
    now = datetime.now(UTC)
    db.table("requests").insert_all(row(now - timedelta(days=d, hours=1), input_tokens=10) for d in range(1, 4))
    db.conn.commit()
    conn = open_read_only(tmp_path / "u.db")

    def tokens() -> int:
        return stats.summary(conn, filters(days="30"))["totals"]["total_input_tokens"]

    assert tokens() == 30
    assert PAST._entries and tokens() == 30  # the second from what was kept
    db.table("requests").insert(row(now - timedelta(days=2), input_tokens=5))  # late, into the past
    db.conn.commit()
    assert tokens() == 35
    db.table("requests").insert(row(now, input_tokens=1))  # today: the kept past still holds
    db.conn.commit()
    assert tokens() == 36
    db.execute("UPDATE requests SET input_tokens = 100 WHERE input_tokens = 5")
    db.conn.commit()
    assert tokens() == 131
    db.execute("DELETE FROM requests WHERE input_tokens = 100")
    db.conn.commit()
    assert tokens() == 31
