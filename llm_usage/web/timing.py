"""How fast each model answers: p50 and p95 of the duration and of the time to the first
token, and the output tokens per second of streamed calls, for ``/stats/by-model``.

Percentiles cannot be summed the way tokens are, and sorting a million durations takes
seconds. So the triggers keep histograms instead (``store/rollup.py``): per UTC day,
provider and model, how many calls fell in each of 40 buckets per decade of milliseconds.
A window reads whole days from them and the partial days at its edges (or, under a filter
the histograms do not have -- client, project, key, session -- every day) from
``requests``, bucketed the same way; the past is kept between requests like every sum
(``past_cache.py``). A percentile is then read from the counts, interpolated within its
bucket: in the bucket of the exact (nearest-rank) value, so within its 6% width -- under 1%
on the benchmark's million rows -- whatever the row count.

Tokens per second is the sum of streamed calls' output tokens over the sum of their time
from the first token to the end (``rollup.GENERATING``): what the generation ran at, each
call weighted by its tokens; the time to first token is left out, it has its own figures.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from ..store import rollup
from . import queries
from .params import Filters
from .past_cache import today_start

QUANTILES = {"p50": 0.5, "p95": 0.95}
KINDS = {"duration": rollup.DURATIONS, "ttft": rollup.FIRST_TOKENS}
_RATIO = 10 ** (1 / rollup.BUCKETS_PER_DECADE)
_DAY = timedelta(days=1)
Counts = dict[int, int]
"""bucket -> calls."""


def quantile(counts: Counts, q: float) -> float | None:
    """The ``q`` quantile (0..1) of the values counted per bucket, in milliseconds: the bucket
    holding rank ``q * n``, interpolated geometrically within it; None without values."""
    total = sum(c for c in counts.values() if c > 0)
    if not total:
        return None
    target, seen = q * total, 0
    lows = rollup.TIMING_LOWS
    for bucket in sorted(counts):
        count = counts[bucket]
        if count <= 0:
            continue
        if seen + count >= target:
            share = (target - seen) / count
            if bucket == 0:  # [0, 1) ms
                return share
            low = lows[bucket]
            return low * _RATIO**share
        seen += count
    return lows[max(counts)] * _RATIO  # not reached: rounding at the very top


def _day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ranges(filters: Filters) -> tuple[list[list[Any]], list[list[Any]]]:
    """The window as whole UTC days (the histograms' keys) and the timestamp ranges around
    them (``[0, low, high]`` segments); all of it as timestamps when a filter needs the rows."""
    low, high = filters.window.since, filters.window.until
    raw_only = any(getattr(filters, name) is not None for name in ("client", "project", "key", "session"))
    if raw_only:
        return [], [[0, queries.OPEN_LOW if low is None else low.timestamp(),
                     queries.OPEN_HIGH if high is None else high.timestamp()]]  # fmt: skip
    day_low = None if low is None else (_day_floor(low) if _day_floor(low) == low else _day_floor(low) + _DAY)
    day_high = None if high is None else _day_floor(high)
    if day_low is not None and day_high is not None and day_low >= day_high:
        return [], [[0, low.timestamp(), high.timestamp()]]  # type: ignore[union-attr]
    days = [[0, queries.OPEN_LOW if day_low is None else day_low.timestamp(),
             queries.OPEN_HIGH if day_high is None else day_high.timestamp()]]  # fmt: skip
    raw = []
    if low is not None and day_low is not None and low < day_low:
        raw.append([0, low.timestamp(), day_low.timestamp()])
    if high is not None and day_high is not None and day_high < high:
        raw.append([0, day_high.timestamp(), high.timestamp()])
    return days, raw


def _sql(kind: str, from_rows: bool, filters: Filters, low: float, high: float) -> tuple[str, dict[str, Any]]:
    table = KINDS[kind]
    params: dict[str, Any] = {"low": low, "high": high}
    if not from_rows:
        where = queries.filter_sql("h", filters, params)
        return (f"SELECT h.provider, h.model, h.bucket, sum(h.calls) FROM {table.table} AS h "
                f"WHERE h.day >= :low AND h.day < :high{where} GROUP BY 1, 2, 3", params)  # fmt: skip
    where = queries.filter_sql("r", filters, params)
    bucket = table.keys["bucket"][1].replace("R.", "r.")
    counted = table.where.replace("R.", "r.")
    sql = (
        f"SELECT coalesce(r.provider, ''), coalesce(r.model, ''), {bucket}, count(*) FROM requests AS r "
        f"WHERE r.timestamp >= :low AND r.timestamp < :high AND {counted}{where} GROUP BY 1, 2, 3"
    )
    return sql, params


def histograms(conn: sqlite3.Connection, filters: Filters) -> dict[tuple[str | None, str | None], dict[str, Counts]]:
    """``{(provider, model): {"duration": counts, "ttft": counts}}`` over the window."""
    out: dict[tuple[str | None, str | None], dict[str, Counts]] = defaultdict(
        lambda: {kind: defaultdict(int) for kind in KINDS}
    )
    if not all(queries.has_table(conn, t.table) for t in KINDS.values()):
        return {}
    days, raw = _ranges(filters)
    frozen = today_start()
    for from_rows, segments in ((False, days), (True, raw)):
        past, recent = queries.split_at(segments, frozen)
        for kept_until, parts in ((frozen, past), (None, recent)):
            for _, low, high in parts:
                for kind in KINDS:
                    sql, params = _sql(kind, from_rows, filters, low, high)
                    for provider, model, bucket, count in queries.kept_rows(conn, sql, params, kept_until):
                        out[(provider or None, model or None)][kind][bucket] += count
    return out


def figures(counts: dict[str, Counts]) -> dict[str, Any]:
    """p50 and p95 (ms, one decimal) of the duration and of the time to first token of one group."""
    fields: dict[str, Any] = {}
    for kind in KINDS:
        for name, q in QUANTILES.items():
            value = quantile(counts.get(kind, {}), q)
            fields[f"{kind}_{name}_ms"] = None if value is None else round(value, 1)
    return fields


def by_model(db: queries.Connectable, filters: Filters) -> dict[str, Any]:
    """``/stats/by-model``: the sums per provider and model, with their speed."""
    with queries.snapshot(queries.connection(db)) as conn:
        answer = queries.by_model(conn, filters)
        counts = histograms(conn, filters)
    for row in answer["models"]:
        row.update(figures(counts.get((row["provider"], row["model"]), {})))
    return answer
