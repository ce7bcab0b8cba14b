"""The stats API's figures: plain functions of a database connection and parsed parameters.

Every sum is read in one read transaction, from two places that add up exactly:
whole UTC hours from ``requests_hourly`` (kept by triggers, see ``store/rollup.py``) and the
partial hours at the edges of a range from ``requests`` itself (through the ``timestamp``
index). A database without the rollup table is read from ``requests`` alone.

What the counts mean (the same in every group):
- ``error_requests``: ``error IS NOT NULL`` or ``status_code >= 400``, except requests that
  owe no usage (``usage_status`` 'none': a pre-connect, a model list); those count under
  ``no_usage_requests``.
- ``unpriced_requests``: calls that did not fail and used tokens, but have no cost (no
  price known for the model); ``cost_usd`` sums the priced calls only, and is ``null``
  when a group has calls and none of them is priced -- never a silent 0. Calls without
  usage (a model list, a stream whose provider sent none) are not unpriced spend: they
  count under ``missing_usage_requests`` when a usage was due.
- ``partial_requests`` / ``missing_usage_requests``: ``usage_status`` 'partial' / 'missing'
  (rows from before that column have NULL there and count as neither).
- ``invalid_usage_requests``: ``usage_status`` 'invalid': the provider's usage could not be
  true (a negative or absurd count or cost); not priced, and an error (the row says why).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..accounting.row import COLUMNS, iso_utc
from ..store import rollup
from .params import MAX_POINTS, Filters, Page, ParamError, Series, Window, local_midnight
from .past_cache import PAST, today_start

_SUMS: dict[str, str] = {name: expr.replace("R.", "r.") for name, (_, expr) in rollup.SUMS.items()}
"""name -> expression over one ``requests`` row ``r``; ``requests_hourly`` has a column of the same sum."""
_ERROR = _SUMS["error_requests"]
_STATUS_WHERE = {
    "error": _ERROR,
    "unpriced": _SUMS["unpriced_requests"],
    "partial": "r.usage_status = 'partial'",
    "missing": "r.usage_status = 'missing'",
    "invalid": "r.usage_status = 'invalid'",
    "no-usage": "r.usage_status = 'none'",
    "incomplete": _SUMS["incompletely_priced_requests"],
}
_STATUS_COUNT = {
    "error": "error_requests",
    "unpriced": "unpriced_requests",
    "partial": "partial_requests",
    "missing": "missing_usage_requests",
    "invalid": "invalid_usage_requests",
    "no-usage": "no_usage_requests",
    "incomplete": "incompletely_priced_requests",
}
FILTER_COLUMNS = {
    "provider": "provider",
    "model": "model",
    "client": "client",
    "project": "project",
    "key": "key_id",
    "session": "session_id",
}
"""``Filters`` field -> the column it matches."""
GROUP_KEYS = tuple(rollup.SESSIONS.keys)[1:]
"""What a sum can be grouped by: every key of the session rollup (the hourly one has all but
``session_id`` and ``subagent``)."""
REQUEST_COLUMNS = ("id", *COLUMNS)
"""What ``/stats/requests`` lists of each row: every column."""
OPEN_LOW, OPEN_HIGH = -1e300, 1e300  # below / above every timestamp and hour key (Unix seconds)

Sums = dict[str, float]
Connectable = sqlite3.Connection | Database


def connection(db: Connectable) -> sqlite3.Connection:
    return db.conn if isinstance(db, Database) else db


# ------------------------------------------------------------------ time keys


def timestamp_key(moment: datetime) -> float:
    """A bound comparable with stored timestamps (REAL Unix seconds)."""
    return moment.timestamp()


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def _hour_key(moment: datetime) -> int:
    """The ``requests_hourly.hour`` of the UTC hour starting at ``moment``."""
    return int(moment.timestamp())


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------ the engine

Bucket = tuple[datetime | None, datetime | None]


def _segments(buckets: Sequence[Bucket], rollup: bool) -> tuple[list[list[Any]], list[list[Any]]]:
    """Split each bucket into whole UTC hours (rollup) and the partial hours around them (raw)."""
    hourly: list[list[Any]] = []
    raw: list[list[Any]] = []
    for index, (low, high) in enumerate(buckets):
        if not rollup:
            low_key = OPEN_LOW if low is None else timestamp_key(low)
            raw.append([index, low_key, OPEN_HIGH if high is None else timestamp_key(high)])
            continue
        hour_low = None if low is None else _ceil_hour(low)
        hour_high = None if high is None else _floor_hour(high)
        if hour_low is not None and hour_high is not None and hour_low >= hour_high:
            raw.append([index, timestamp_key(low), timestamp_key(high)])  # type: ignore[arg-type]
            continue
        if low is not None and hour_low is not None and low < hour_low:
            raw.append([index, timestamp_key(low), timestamp_key(hour_low)])
        hourly.append(
            [
                index,
                OPEN_LOW if hour_low is None else _hour_key(hour_low),
                OPEN_HIGH if hour_high is None else _hour_key(hour_high),
            ]
        )
        if high is not None and hour_high is not None and hour_high < high:
            raw.append([index, timestamp_key(hour_high), timestamp_key(high)])
    return hourly, raw


def filter_sql(alias: str, filters: Filters, params: dict[str, Any]) -> str:
    clauses = []
    for field, column in FILTER_COLUMNS.items():
        value = getattr(filters, field)
        if value is not None:
            clauses.append(f"{alias}.{column} = :{field}")
            params[field] = value
    return "".join(f" AND {clause}" for clause in clauses)


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()
    return row is not None


def _rollup_for(filters: Filters, group_by: Sequence[str]) -> rollup.Rollup:
    """The session rollup only where sessions matter: it holds more rows."""
    if filters.session is not None or {"session_id", "subagent"} & set(group_by):
        return rollup.SESSIONS
    return rollup.HOURLY


def aggregate(
    db: Connectable,
    filters: Filters,
    buckets: Sequence[Bucket],
    group_by: Sequence[str] = (),
    use_rollup: bool = True,
    only: Sequence[str] | None = None,
    sessions: Sequence[str] | None = None,
) -> dict[tuple[Any, ...], Sums]:
    """``{(bucket index, *group values): sums}`` over ``[low, high)`` of each bucket
    (all the sums, or ``only`` those named; of the calls of ``sessions`` alone, if given)."""
    if any(key not in GROUP_KEYS for key in group_by):
        raise ValueError(f"cannot group by {group_by!r}")
    names = list(_SUMS) if only is None else list(only)
    if any(name not in _SUMS for name in names):
        raise ValueError(f"unknown sums {names!r}")
    conn = connection(db)
    chosen = rollup.SESSIONS if sessions is not None else _rollup_for(filters, group_by)
    hourly, raw = _segments(buckets, use_rollup and has_table(conn, chosen.table))
    frozen = today_start()
    past, recent = split_at(hourly, frozen)
    past_raw, recent_raw = split_at(raw, frozen)
    width = 1 + len(group_by)
    result: dict[tuple[Any, ...], Sums] = {}
    parts = (("h", past, frozen), ("h", recent, None), ("r", past_raw, frozen), ("r", recent_raw, None))
    for alias, segments, kept_until in parts:
        if not segments:
            continue
        sql, params = _sum_sql(alias, chosen.table if alias == "h" else "requests", segments, filters, group_by, names,
                               chosen is rollup.SESSIONS, sessions)  # fmt: skip
        for row in kept_rows(conn, sql, params, kept_until):
            group = (row[0], *(value if value != "" else None for value in row[1:width]))
            target = result.setdefault(group, dict.fromkeys(names, 0))
            for name, value in zip(names, row[width:], strict=True):
                target[name] += value or 0
    return result


def kept_rows(conn: sqlite3.Connection, sql: str, params: dict[str, Any], kept_until: int | None) -> list[Any]:
    """A query's rows; for one over the past only (before ``kept_until``), kept between requests."""
    if kept_until is None:
        return conn.execute(sql, params).fetchall()
    return PAST.rows(
        conn, (sql, tuple(sorted(params.items()))), kept_until, lambda: conn.execute(sql, params).fetchall()
    )


def split_at(segments: list[list[Any]], frozen: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Segments (``[index, low, high]``, hour keys or timestamps) cut at ``frozen`` (today's
    start): before it, the past whose sums are kept."""
    past, recent = [], []
    for index, low, high in segments:
        if high <= frozen:
            past.append([index, low, high])
        elif low >= frozen:
            recent.append([index, low, high])
        else:
            past.append([index, low, frozen])
            recent.append([index, frozen, high])
    return past, recent


def _sum_sql(
    alias: str,
    table: str,
    segments: list[list[Any]],
    filters: Filters,
    group_by: Sequence[str],
    names: Sequence[str],
    session_rows: bool,
    sessions: Sequence[str] | None,
) -> tuple[str, dict[str, Any]]:
    """The query that sums ``names`` per segment (and ``group_by``) from the rollup (``h``)
    or the rows themselves (``r``)."""
    params: dict[str, Any] = {"segments": json.dumps(segments)}
    where = filter_sql(alias, filters, params)
    if alias == "r" and session_rows:
        where += " AND r.session_id IS NOT NULL"  # the calls the session rollup counts
    if sessions is not None:
        where += f" AND {alias}.session_id IN (SELECT value FROM json_each(:sessions))"
        params["sessions"] = json.dumps(list(sessions))
    column = "hour" if alias == "h" else "timestamp"
    keys = "".join(f", {alias}.{key}" for key in group_by)
    if alias == "h":
        sums = ", ".join(f"sum(h.{name})" for name in names)
    else:
        sums = ", ".join(f"sum({_SUMS[name]})" for name in names)
    sql = (
        f"SELECT json_extract(s.value, '$[0]') AS b{keys}, {sums} "
        f"FROM json_each(:segments) AS s CROSS JOIN {table} AS {alias} "
        f"WHERE {alias}.{column} >= json_extract(s.value, '$[1]') "
        f"AND {alias}.{column} < json_extract(s.value, '$[2]'){where} "
        f"GROUP BY b{keys}"
    )
    return sql, params


def figures(sums: Sums | None) -> dict[str, Any]:
    """The public fields of one group's sums."""
    s = sums or {}
    requests = int(s.get("requests", 0))
    priced = int(s.get("priced_requests", 0))
    timed = int(s.get("timed_requests", 0))
    return {
        "requests": requests,
        "input_tokens": int(s.get("input_tokens", 0)),
        "output_tokens": int(s.get("output_tokens", 0)),
        "total_tokens": int(s.get("total_tokens", 0)),
        # null only when calls that owe usage have no price at all (never a silent 0)
        "cost_usd": round(float(s.get("cost_usd", 0)), 10)
        if priced or not requests - int(s.get("no_usage_requests", 0))
        else None,
        "cache_read_tokens": int(s.get("cache_read_tokens", 0)),
        "cache_write_tokens": int(s.get("cache_write_tokens", 0)),
        "reasoning_tokens": int(s.get("reasoning_tokens", 0)),
        "cache_savings_usd": round(float(s.get("cache_savings_usd", 0)), 10),
        "priced_requests": priced,
        "unpriced_requests": int(s.get("unpriced_requests", 0)),
        "error_requests": int(s.get("error_requests", 0)),
        "partial_requests": int(s.get("partial_requests", 0)),
        "missing_usage_requests": int(s.get("missing_usage_requests", 0)),
        "no_usage_requests": int(s.get("no_usage_requests", 0)),
        "invalid_usage_requests": int(s.get("invalid_usage_requests", 0)),
        "incompletely_priced_requests": int(s.get("incompletely_priced_requests", 0)),
        "tiered_requests": int(s.get("tiered_requests", 0)),
        "tool_fees_usd": round(float(s.get("tool_fees_usd", 0)), 10),
        "streaming_requests": int(s.get("streaming_requests", 0)),
        "avg_duration_ms": round(float(s["duration_ms"]) / timed, 1) if timed else None,
        # streamed output over the time from the first token to the end (``rollup.GENERATING``)
        "output_tokens_per_s": round(float(s["generated_output_tokens"]) * 1000 / float(s["generating_ms"]), 1)
        if s.get("generating_ms")
        else None,
    }


def _add(into: Sums, sums: Sums) -> None:
    for name, value in sums.items():
        into[name] = into.get(name, 0) + value


def _grouped(rows: dict[tuple[Any, ...], Sums], positions: Sequence[int], names: Sequence[str]) -> list[dict[str, Any]]:
    merged: dict[tuple[Any, ...], Sums] = {}
    for key, sums in rows.items():
        _add(merged.setdefault(tuple(key[i] for i in positions), {}), sums)
    out = []
    for key, sums in merged.items():
        if not sums.get("requests"):
            continue  # hours whose rows were all deleted
        out.append({**dict(zip(names, key, strict=True)), **figures(sums)})
    out.sort(key=lambda row: (-(row["cost_usd"] or 0), -row["requests"], [str(row[n]) for n in names]))
    return out


def _window_info(window: Window) -> dict[str, Any]:
    return {"since": _iso(window.since), "until": _iso(window.until), "tz": window.tz.key}


def snapshot(conn: sqlite3.Connection) -> _Snapshot:
    return _Snapshot(conn)


class _Snapshot:
    """One read transaction, so every figure of a response comes from the same state."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.began = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.began and self.conn.in_transaction:
            self.conn.execute("COMMIT")


# ------------------------------------------------------------------ endpoints


def summary(db: Connectable, filters: Filters) -> dict[str, Any]:
    """``/stats/summary``: totals, and the same figures per provider and per client."""
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("provider", "client"))
    total: Sums = {}
    for sums in rows.values():
        _add(total, sums)
    fig = figures(total)
    totals = {
        "total_requests": fig.pop("requests"),
        "total_input_tokens": fig.pop("input_tokens"),
        "total_output_tokens": fig.pop("output_tokens"),
        "total_tokens": fig.pop("total_tokens"),
        "total_cost_usd": fig.pop("cost_usd"),
        **fig,
    }
    return {
        "totals": totals,
        "by_provider": _grouped(rows, [1], ["provider"]),
        "by_client": _grouped(rows, [2], ["client"]),
        "window": _window_info(filters.window),
    }


def by_model(db: Connectable, filters: Filters) -> dict[str, Any]:
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("provider", "model"))
    return {"models": _grouped(rows, [1, 2], ["provider", "model"]), "window": _window_info(filters.window)}


def by_client(db: Connectable, filters: Filters) -> dict[str, Any]:
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("client",))
    return {"clients": _grouped(rows, [1], ["client"]), "window": _window_info(filters.window)}


def by_provider(db: Connectable, filters: Filters) -> dict[str, Any]:
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("provider",))
    return {"providers": _grouped(rows, [1], ["provider"]), "window": _window_info(filters.window)}


def by_project(db: Connectable, filters: Filters) -> dict[str, Any]:
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("project",))
    return {"projects": _grouped(rows, [1], ["project"]), "window": _window_info(filters.window)}


def by_key(db: Connectable, filters: Filters, labels: dict[str, str]) -> dict[str, Any]:
    """Per key fingerprint, with the label the user gave it (``llm_usage_key_labels``)."""
    with snapshot(connection(db)) as conn:
        rows = aggregate(conn, filters, [(filters.window.since, filters.window.until)], ("key_id",))
    keys = _grouped(rows, [1], ["key_id"])
    for key in keys:
        key["label"] = labels.get(key["key_id"] or "")
    return {"keys": keys, "window": _window_info(filters.window)}


_SESSION_GROUPS = ("session_id", "subagent", "model", "client", "project")


def by_session(db: Connectable, filters: Filters, page: Page) -> dict[str, Any]:
    """``/stats/by-session``: the sessions with calls in the window, latest first.

    Which sessions, and in what order, comes from each one's last hour with calls (the
    session rollup; the partial hours at the window's edges from ``requests``); the exact
    first and last call from two index seeks per listed session; the sums of the listed
    sessions alone from the rollup again -- so a year of sessions costs about what a page does."""
    window = filters.window
    end = page.offset + page.limit
    with snapshot(connection(db)) as conn:
        latest = _latest_hours(conn, filters)
        ranked = sorted(latest, key=lambda k: (latest[k], k), reverse=True)
        cut = latest[ranked[end - 1]] if len(ranked) >= end else None
        chosen = ranked if cut is None else [k for k in ranked if latest[k] >= cut]  # ties at the cut
        spans = {k: _first_last(conn, filters, k) for k in chosen}
        listed = sorted(chosen, key=lambda k: (spans[k][1] or 0, k), reverse=True)[page.offset : end]
        rows = (
            aggregate(conn, filters, [(window.since, window.until)], _SESSION_GROUPS, sessions=listed) if listed else {}
        )
    entries: dict[str, dict[str, Any]] = {
        k: {"sums": {}, "sub": {}, "models": {}, "clients": {}, "projects": {}} for k in listed
    }
    for (_, session, subagent, model, client, project), sums in rows.items():
        entry = entries[session]
        _add(entry["sums"], sums)
        if subagent is not None:
            _add(entry["sub"], sums)
        for kind, name in (("models", model), ("clients", client), ("projects", project)):
            if name is not None:
                entry[kind][name] = entry[kind].get(name, 0) + sums.get("requests", 0)
    out = []
    for key in listed:
        entry, (first, last) = entries[key], spans[key]
        fig, sub = figures(entry["sums"]), figures(entry["sub"])
        out.append({
            "session_id": key,
            "first_call": _shown_time(first),
            "last_call": _shown_time(last),
            "duration_s": round(last - first, 3) if first is not None and last is not None else None,
            **fig,
            "client": _most(entry["clients"]),
            "project": _most(entry["projects"]),
            "models": sorted(entry["models"], key=lambda m: -entry["models"][m]),
            "subagent_requests": sub["requests"],
            "subagent_cost_usd": sub["cost_usd"] if sub["requests"] else 0,
            "subagent_share": _share(sub, fig),
        })  # fmt: skip
    return {
        "sessions": out,
        "total_sessions": len(latest),
        "limit": page.limit,
        "offset": page.offset,
        "window": _window_info(window),
    }


def upstream_429s(db: Connectable, filters: Filters) -> dict[str, Any]:
    """Rate-limit refusals by the providers (not the proxy's own budget refusals) in the
    window, per provider and key."""
    window = filters.window
    params: dict[str, Any] = {
        "low": OPEN_LOW if window.since is None else timestamp_key(window.since),
        "high": OPEN_HIGH if window.until is None else timestamp_key(window.until),
    }
    sql = (
        "SELECT r.provider, r.key_id, count(*), max(r.timestamp) FROM requests AS r "
        "WHERE r.timestamp >= :low AND r.timestamp < :high AND r.status_code = 429 "
        f"AND coalesce(r.error, '') NOT LIKE 'llm-usage budget %'{filter_sql('r', filters, params)} "
        "GROUP BY r.provider, r.key_id ORDER BY count(*) DESC"
    )
    with snapshot(connection(db)) as conn:
        rows = conn.execute(sql, params).fetchall()
    counts = [{"provider": p, "key_id": k, "upstream_429s": n, "last": _shown_time(t)} for p, k, n, t in rows]
    return {"upstream_429s": counts, "window": _window_info(window)}


def _most(counts: dict[str, float]) -> str | None:
    return max(counts, key=lambda name: (counts[name], name)) if counts else None


def _share(part: dict[str, Any], whole: dict[str, Any]) -> float | None:
    """The subagents' share of a session: of its cost, or of its calls when it has no cost."""
    if whole["cost_usd"]:
        return round((part["cost_usd"] or 0) / whole["cost_usd"], 4)
    return round(part["requests"] / whole["requests"], 4) if whole["requests"] else None


def _latest_hours(conn: sqlite3.Connection, filters: Filters) -> dict[str, int]:
    """Every session with a call in the window, and its last hour with one: whole hours
    from the session rollup, the partial hours at the window's edges from ``requests``."""
    window = filters.window
    hours: list[tuple[Any, Any]] = []
    raw: list[tuple[Any, Any]] = []
    for kind, low, high in _split_hours(window.since, window.until):
        (hours if kind == "hours" else raw).append((low, high))
    if not has_table(conn, rollup.SESSIONS.table):
        hours, raw = [], [(OPEN_LOW if window.since is None else timestamp_key(window.since),
                           OPEN_HIGH if window.until is None else timestamp_key(window.until))]  # fmt: skip
    latest: dict[str, int] = {}
    frozen = today_start()
    past, recent = split_at([[0, low, high] for low, high in hours], frozen)
    for segments, kept_until in ((past, frozen), (recent, None)):
        for _, low, high in segments:
            params: dict[str, Any] = {"low": low, "high": high}
            # the covering index (session_id, hour, and the other keys with them): no sort, no table reads
            sql = (
                f"SELECT h.session_id, max(h.hour) FROM {rollup.SESSIONS.table} AS h "
                f"INDEXED BY {rollup.SESSIONS.table}_by_session_id "
                f"WHERE h.hour >= :low AND h.hour < :high{filter_sql('h', filters, params)} GROUP BY h.session_id"
            )
            for session, hour in kept_rows(conn, sql, params, kept_until):
                latest[session] = max(latest.get(session, hour), hour)
    for low, high in raw:
        params = {"low": low, "high": high}
        sql = (
            "SELECT r.session_id, max(CAST(r.timestamp / 3600 AS INTEGER) * 3600) FROM requests AS r "
            "WHERE r.timestamp >= :low AND r.timestamp < :high AND r.session_id IS NOT NULL"
            f"{filter_sql('r', filters, params)} GROUP BY r.session_id"
        )
        for session, hour in conn.execute(sql, params):
            latest[session] = max(latest.get(session, hour), hour)
    return latest


def _split_hours(since: datetime | None, until: datetime | None) -> list[tuple[str, Any, Any]]:
    """``[since, until)`` as whole UTC hours (rollup hour keys) and the partial hours around
    them (timestamp bounds): ``("hours" | "raw", low, high)``."""
    hourly, raw = _segments([(since, until)], True)
    return [("hours", low, high) for _, low, high in hourly] + [("raw", low, high) for _, low, high in raw]


def _first_last(conn: sqlite3.Connection, filters: Filters, session: str) -> tuple[float | None, float | None]:
    """A session's first and last call in the window (index ``(session_id, timestamp)``)."""
    window = filters.window
    params: dict[str, Any] = {
        "low": OPEN_LOW if window.since is None else timestamp_key(window.since),
        "high": OPEN_HIGH if window.until is None else timestamp_key(window.until),
    }
    where = filter_sql("r", filters.with_session(session), params)
    sql = f"FROM requests AS r WHERE r.timestamp >= :low AND r.timestamp < :high{where}"
    first = conn.execute(f"SELECT min(r.timestamp) {sql}", params).fetchone()[0]
    last = conn.execute(f"SELECT max(r.timestamp) {sql}", params).fetchone()[0]
    return first, last


EXPORT_PAGE = 5000
_TIMESTAMP_AT = REQUEST_COLUMNS.index("timestamp")


def export_rows(conn: sqlite3.Connection, filters: Filters) -> Iterator[tuple[Any, ...]]:
    """Every row in the window and filters, oldest first, as the database has it -- read a
    page at a time, each page its own short read: a slow (or stalled) reader of a long export
    never holds the lock that would keep the proxy's writer from committing rows."""
    window = filters.window
    params: dict[str, Any] = {
        "since": OPEN_LOW if window.since is None else timestamp_key(window.since),
        "until": OPEN_HIGH if window.until is None else timestamp_key(window.until),
        "page": EXPORT_PAGE,
    }
    where = filter_sql("r", filters, params)
    sql = (
        f"SELECT {', '.join('r.' + c for c in REQUEST_COLUMNS)} FROM requests AS r "
        f"WHERE r.timestamp >= :from AND r.timestamp < :until{where} "
        "AND (r.timestamp > :from OR r.id > :after) ORDER BY r.timestamp, r.id LIMIT :page"
    )
    params.update({"from": params["since"], "after": -1})
    while True:
        rows = conn.execute(sql, params).fetchall()
        yield from rows
        if len(rows) < EXPORT_PAGE:
            return
        params.update({"from": rows[-1][_TIMESTAMP_AT], "after": rows[-1][0]})


def recent_requests(db: Connectable, filters: Filters, page: Page) -> dict[str, Any]:
    """``/stats/requests``: one page of rows, newest first, and how many match in all."""
    window = filters.window
    params: dict[str, Any] = {
        "since": OPEN_LOW if window.since is None else timestamp_key(window.since),
        "until": OPEN_HIGH if window.until is None else timestamp_key(window.until),
        "limit": page.limit,
        "offset": page.offset,
    }
    where = filter_sql("r", filters, params)
    if page.status is not None:
        where += f" AND {_STATUS_WHERE[page.status]}"
    sql = (
        f"SELECT {', '.join('r.' + c for c in REQUEST_COLUMNS)} FROM requests AS r "
        f"WHERE r.timestamp >= :since AND r.timestamp < :until{where} "
        "ORDER BY r.timestamp DESC, r.id DESC LIMIT :limit OFFSET :offset"
    )
    with snapshot(connection(db)) as conn:
        cursor = conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor]
        counted = "requests" if page.status is None else _STATUS_COUNT[page.status]
        sums = aggregate(conn, filters, [(window.since, window.until)], only=[counted]).get((0,))
    total = int((sums or {}).get(counted, 0))
    for row in rows:
        row["timestamp"] = _shown_time(row["timestamp"])
        row["streaming"] = None if row["streaming"] is None else bool(row["streaming"])
    return {
        "requests": rows,
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "status": page.status,
        "window": _window_info(window),
    }


def _shown_time(value: Any) -> Any:
    """A row's time as the API shows it (ISO-8601 UTC)."""
    if isinstance(value, (int, float)):
        try:
            return iso_utc(value)
        except (ValueError, OverflowError, OSError):
            return None
    return value


BUCKET_SPAN = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
}
"""Each bucket's longest length: how far to look back for the one holding a moment."""


def _opens_bucket(day: date, bucket: str) -> bool:
    """Whether a local day starts a ``bucket``: every day, an ISO week's Monday, a month's 1st."""
    return bucket == "day" or (bucket == "week" and day.weekday() == 0) or (bucket == "month" and day.day == 1)


def bucket_starts(window: Window, bucket: str, first: datetime, end: datetime) -> list[datetime]:
    """UTC starts of the ``bucket``s (local days, ISO weeks from Monday, calendar months, or
    local wall-clock hours in ``window.tz``) that overlap ``[first, end)``, in order. Days
    follow local midnights (23 or 25 hours long across DST changes); hours follow the local
    clock (the repeated hour of a fall-back change is two buckets, a skipped hour none)."""
    tz = window.tz
    first_day = first.astimezone(tz).date() - max(BUCKET_SPAN[bucket], timedelta(days=1))
    last_day = end.astimezone(tz).date() + timedelta(days=1)
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    if bucket != "hour":
        starts = sorted({local_midnight(day, tz) for day in days if _opens_bucket(day, bucket)})
    else:
        starts = sorted(
            {
                datetime(day.year, day.month, day.day, hour, tzinfo=tz, fold=fold).astimezone(UTC)
                for day in days
                for hour in range(24)
                for fold in (0, 1)
            }
        )
    # keep the bucket that contains ``first`` and every one that starts before ``end``
    lead = [s for s in starts if s <= first]
    kept = ([lead[-1]] if lead else []) + [s for s in starts if first < s < end]
    return kept


def _first_timestamp(conn: sqlite3.Connection) -> datetime | None:
    row = conn.execute("SELECT min(timestamp) FROM requests").fetchone()
    if not row or row[0] is None:
        return None
    try:
        return datetime.fromtimestamp(row[0], UTC)
    except (TypeError, ValueError, OverflowError, OSError):  # no row with a time: only unreadable text
        return None


def timeseries(db: Connectable, filters: Filters, series: Series, now: datetime | None = None) -> dict[str, Any]:
    """``/stats/timeseries``: one point per local hour, day, week or month of ``filters.window``,
    empty ones included."""
    window = filters.window
    now = now or datetime.now(UTC)
    with snapshot(connection(db)) as conn:
        first = window.since or _first_timestamp(conn)
        end = window.until or now
        points: list[dict[str, Any]] = []
        if first is not None and first < end:
            estimate = (end - first) / BUCKET_SPAN[series.bucket]
            if estimate > MAX_POINTS + 48:
                raise ParamError(f"bucket: {series.bucket} buckets over this range exceed {MAX_POINTS} points")
            starts = bucket_starts(window, series.bucket, first, end)
            if len(starts) > MAX_POINTS:
                raise ParamError(f"bucket: {series.bucket} buckets over this range exceed {MAX_POINTS} points")
            natural_ends = [*starts[1:], _next_start(window, series.bucket, starts[-1])] if starts else []
            buckets: list[Bucket] = []
            for index, start in enumerate(starts):
                low = max(start, window.since) if window.since else start
                high = natural_ends[index] if window.until is None else min(natural_ends[index], window.until)
                buckets.append((low, high))
            rows = aggregate(conn, filters, buckets)
            for index, start in enumerate(starts):
                fig = figures(rows.get((index,)))
                points.append({"start": start.astimezone(window.tz).isoformat(), **fig})
    return {"bucket": series.bucket, "tz": window.tz.key, "points": points, "window": _window_info(window)}


def _next_start(window: Window, bucket: str, start: datetime) -> datetime:
    following = bucket_starts(window, bucket, start, start + 2 * BUCKET_SPAN[bucket] + timedelta(days=2))
    later = [s for s in following if s > start]
    return later[0]


def health(db: Connectable | None) -> dict[str, Any]:
    """``/healthz``: the proxy answers; and whether the database can be read (no figures)."""
    if db is None:
        return {"ok": True, "database": "not created yet"}
    connection(db).execute("SELECT 1 FROM requests LIMIT 1").fetchall()
    return {"ok": True, "database": "ok"}
