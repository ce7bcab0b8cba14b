"""The speed figures of ``/stats/by-model``: p50/p95 from the timing histograms against the
exact nearest-rank percentiles of the same rows, and tokens per second against plain SQL."""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from llm_usage.store.rollup import TIMING_LOWS
from llm_usage.store.schema import open_database
from llm_usage.web import timing
from llm_usage.web.params import parse_filters

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WIDTH = 10 ** (1 / 40)  # one bucket: the most an estimate can be off


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        streamed = rng.random() < 0.6
        duration = rng.lognormvariate(7.5, 0.8)
        first = duration * rng.uniform(0.05, 0.6) if streamed else None
        status = rng.choices(["complete", "none", "partial", None], [90, 4, 3, 3])[0]
        rows.append({
            "timestamp": (NOW - timedelta(seconds=rng.randrange(10 * 86400))).timestamp(),
            "provider": rng.choice(["openai", "anthropic"]),
            "model": rng.choice(["fast", "slow", None]),
            "client": rng.choice(["Codex CLI", "Claude Code"]),
            "project": rng.choice(["webshop", "blog", None]),
            "endpoint": "/v1/x", "method": "POST",
            "duration_ms": None if rng.random() < 0.03 else duration,
            "ttft_ms": first,
            "streaming": int(streamed),
            "output_tokens": rng.randrange(0, 2000),
            "usage_status": status,
        })  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    path = tmp_path_factory.mktemp("timing") / "usage.db"
    db = open_database(path)
    db.table("requests").insert_all(_rows(3000, 5))
    db.close()
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    yield c
    c.close()


def _exact(conn: sqlite3.Connection, column: str, where: str, params: dict[str, Any], q: float) -> float | None:
    values = [v for (v,) in conn.execute(f"SELECT {column} FROM requests WHERE {where} ORDER BY {column}", params)]
    return values[max(0, math.ceil(q * len(values)) - 1)] if values else None


WINDOWS = [
    {},
    {"days": "3", "tz": "America/New_York"},
    {"since": "2026-11-21T07:30:00", "until": "2026-11-27T18:15:00", "tz": "Asia/Kolkata"},
    {"days": "7", "project": "webshop"},  # a filter the histograms lack: from the rows
    {"provider": "anthropic", "client": "Codex CLI"},
]


@pytest.mark.parametrize("values", WINDOWS, ids=lambda v: "&".join(f"{k}={x}" for k, x in v.items()) or "all")
def test_percentiles_fall_in_the_exact_values_bucket(conn: sqlite3.Connection, values: dict[str, str]) -> None:
    f = parse_filters(values, NOW)
    models = timing.by_model(conn, f)["models"]
    assert models
    for row in models:
        where = "coalesce(provider, '') = :p AND coalesce(model, '') = :m AND timestamp >= :low AND timestamp < :high"
        params: dict[str, Any] = {
            "p": row["provider"] or "", "m": row["model"] or "",
            "low": f.window.since.timestamp() if f.window.since else -1e300,
            "high": f.window.until.timestamp() if f.window.until else 1e300,
        }  # fmt: skip
        for name in ("client", "project"):
            if getattr(f, name) is not None:
                where += f" AND {name} = :{name}"
                params[name] = getattr(f, name)
        kinds = {
            "duration": ("duration_ms", "duration_ms IS NOT NULL AND coalesce(usage_status, '') != 'none'"),
            "ttft": ("ttft_ms", "ttft_ms IS NOT NULL"),
        }
        for kind, (column, counted) in kinds.items():
            for label, q in (("p50", 0.5), ("p95", 0.95)):
                exact = _exact(conn, column, f"{where} AND {counted}", params, q)
                shown = row[f"{kind}_{label}_ms"]
                if exact is None:
                    assert shown is None
                else:
                    assert exact / WIDTH - 0.1 <= shown <= exact * WIDTH + 0.1, (row["model"], kind, label)
        generating = (
            "streaming = 1 AND ttft_ms IS NOT NULL AND duration_ms > ttft_ms AND output_tokens > 0"
        )
        sums = f"SELECT sum(output_tokens), sum(duration_ms - ttft_ms) FROM requests WHERE {where} AND {generating}"
        tokens, ms = conn.execute(sums, params).fetchone()
        assert row["output_tokens_per_s"] == (round(tokens * 1000 / ms, 1) if ms else None)


def test_the_histograms_follow_deletes_and_updates(tmp_path: Path) -> None:
    db = open_database(tmp_path / "u.db")
    db.table("requests").insert_all(_rows(400, 9))
    db.execute("DELETE FROM requests WHERE id % 3 = 0")
    db.execute("UPDATE requests SET duration_ms = duration_ms * 10, model = 'slow' WHERE id % 5 = 0")
    db.conn.commit()
    f = parse_filters({}, NOW)
    for row in timing.by_model(db.conn, f)["models"]:
        where = "coalesce(provider, '') = :p AND coalesce(model, '') = :m AND duration_ms IS NOT NULL"
        where += " AND coalesce(usage_status, '') != 'none'"
        exact = _exact(db.conn, "duration_ms", where, {"p": row["provider"] or "", "m": row["model"] or ""}, 0.95)
        assert exact / WIDTH - 0.1 <= row["duration_p95_ms"] <= exact * WIDTH + 0.1  # type: ignore[operator]


def test_values_that_are_no_duration_are_left_out(tmp_path: Path) -> None:
    """Rows a person wrote by hand (text, a negative or infinite time): inserts still work, and
    the percentiles are those of the real durations."""
    db = open_database(tmp_path / "odd.db")
    good = [{"timestamp": NOW.timestamp() - i, "provider": "openai", "model": "m", "duration_ms": 1000.0 + i,
             "usage_status": "complete"} for i in range(20)]  # fmt: skip
    odd = [{**good[0], "duration_ms": value} for value in ("abc", -5.0, b"\x00", None)]
    db.table("requests").insert_all(good + odd)
    db.conn.commit()
    row = timing.by_model(db.conn, parse_filters({}, NOW))["models"][0]
    assert 1000 / WIDTH <= row["duration_p50_ms"] <= 1020 * WIDTH and 1000 <= row["duration_p95_ms"] <= 1020 * WIDTH


def test_quantiles_from_counts() -> None:
    assert timing.quantile({}, 0.5) is None
    assert timing.quantile({0: 4}, 0.5) == pytest.approx(0.5)  # under 1 ms: [0, 1)
    one = TIMING_LOWS.index(100.0) if 100.0 in TIMING_LOWS else 81
    assert 100 <= timing.quantile({one: 1}, 0.5) < 100 * WIDTH  # type: ignore[operator]
    assert timing.quantile({one: 9, one + 40: 1}, 0.95) >= 1000  # type: ignore[operator]
    assert timing.quantile({one: 1, one + 1: 0, one + 2: -1}, 0.5) is not None  # emptied buckets skipped
