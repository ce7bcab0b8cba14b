"""The rollups: the stats' sums per UTC hour and key -- ``requests_hourly`` (provider,
model, client, project, key) and ``requests_sessions_hourly`` (the same and session,
subagent, for the calls that belong to a session) -- and the timing histograms per UTC day,
provider and model (``requests_durations_daily``, ``requests_first_tokens_daily``: how
many calls fell in each bucket of duration or time to first token), which give the
percentiles without sorting a million rows.

Kept by triggers on ``requests`` (insert, delete, update), so the stats read whole hours
(days) from them and only the partial ones at the edges of a range from ``requests``
(``web/queries.py``). ``SUMS`` is the one definition of every figure, used both to keep
the tables and to read raw rows; NULL keys are stored as ''. The tables are derived data:
``ensure`` (run after the migrations) rebuilds them, with their triggers, from the rows
whenever these definitions differ from the ones they were built with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlite_utils import Database

from ..accounting.pricing import STANDARD_TIERS

_STANDARD_TIERS = ", ".join(f"'{tier}'" for tier in sorted(STANDARD_TIERS))

ERROR = "(coalesce(R.usage_status, '') != 'none' AND (R.error IS NOT NULL OR coalesce(R.status_code, 0) >= 400))"
"""A failed call: an error, or an HTTP error status -- except for a request that owes no
usage (``usage_status`` 'none': a pre-connect, a model list), which is traffic, not a call."""

GENERATING = (
    "(coalesce(R.streaming, 0) != 0 AND R.ttft_ms IS NOT NULL AND R.duration_ms > R.ttft_ms "
    "AND R.output_tokens > 0 AND typeof(R.output_tokens) = 'integer')"
)
"""A streamed call whose output came after its first token: its output tokens over the
time from the first token to the end are its generation speed (the stats' tokens/s)."""

SUMS: dict[str, tuple[str, str]] = {
    # name -> (SQL type, value added per row ``R``)
    "requests": ("INTEGER", "1"),
    "input_tokens": ("INTEGER", "coalesce(R.input_tokens, 0)"),
    "output_tokens": ("INTEGER", "coalesce(R.output_tokens, 0)"),
    "total_tokens": ("INTEGER", "coalesce(R.total_tokens, 0)"),
    "cache_read_tokens": ("INTEGER", "coalesce(R.cache_read_tokens, 0)"),
    "cache_write_tokens": ("INTEGER", "coalesce(R.cache_write_tokens, 0)"),
    "reasoning_tokens": ("INTEGER", "coalesce(R.reasoning_tokens, 0)"),
    "cost_usd": ("REAL", "coalesce(R.cost_usd, 0)"),
    "priced_requests": ("INTEGER", "(R.cost_usd IS NOT NULL)"),
    "cache_savings_usd": ("REAL", "coalesce(R.cache_savings_usd, 0)"),
    "error_requests": ("INTEGER", ERROR),
    "unpriced_requests": (
        "INTEGER",
        f"(R.cost_usd IS NULL AND NOT {ERROR} AND (R.input_tokens IS NOT NULL OR R.output_tokens IS NOT NULL))",
    ),
    "partial_requests": ("INTEGER", "(coalesce(R.usage_status, '') = 'partial')"),
    "missing_usage_requests": ("INTEGER", "(coalesce(R.usage_status, '') = 'missing')"),
    "no_usage_requests": ("INTEGER", "(coalesce(R.usage_status, '') = 'none')"),
    "invalid_usage_requests": ("INTEGER", "(coalesce(R.usage_status, '') = 'invalid')"),
    "incompletely_priced_requests": ("INTEGER", "(coalesce(R.cost_breakdown, '') LIKE '%\"unpriced\"%')"),
    "tiered_requests": ("INTEGER", f"(coalesce(R.service_tier, '') NOT IN ({_STANDARD_TIERS}))"),
    "tool_fees_usd": (
        "REAL",
        "CASE WHEN json_valid(R.cost_breakdown) THEN coalesce(json_extract(R.cost_breakdown, '$.tool_fees_usd'), 0) "
        "ELSE 0 END",
    ),
    "streaming_requests": ("INTEGER", "(coalesce(R.streaming, 0) != 0)"),
    "duration_ms": ("REAL", "coalesce(R.duration_ms, 0)"),
    "timed_requests": ("INTEGER", "(R.duration_ms IS NOT NULL)"),
    "generated_output_tokens": ("INTEGER", f"CASE WHEN {GENERATING} THEN R.output_tokens ELSE 0 END"),
    "generating_ms": ("REAL", f"CASE WHEN {GENERATING} THEN R.duration_ms - R.ttft_ms ELSE 0 END"),
}
_HOUR = ("INTEGER", "CAST(R.timestamp / 3600 AS INTEGER) * 3600")  # the UTC hour's start, Unix seconds
_DAY = ("INTEGER", "CAST(R.timestamp / 86400 AS INTEGER) * 86400")  # the UTC day's start
TIMED = "typeof(R.timestamp) IN ('real', 'integer')"
"""A row with a time (the rest -- text a migration could not read as one -- is in no range)."""


def _text(column: str) -> tuple[str, str]:
    return ("TEXT", f"coalesce(R.{column}, '')")


@dataclass(frozen=True)
class Rollup:
    """One table of the sums per UTC hour and ``keys``, kept by triggers on ``requests``."""

    table: str
    keys: dict[str, tuple[str, str]]
    """name -> (SQL type, value for row ``R``); ``hour`` first."""
    where: str = TIMED
    """The rows it counts."""
    index: tuple[str, ...] = ()
    """A second index, for reading one key's hours."""
    sums: dict[str, tuple[str, str]] = field(default_factory=lambda: SUMS)
    """name -> (SQL type, value added per row ``R``)."""


HOURLY = Rollup(
    "requests_hourly",
    {"hour": _HOUR, **{name: _text(name) for name in ("provider", "model", "client", "project", "key_id")}},
)
"""Every call, by provider, model, client, project and key: what every stat reads."""
SESSIONS = Rollup(
    "requests_sessions_hourly",
    {
        "hour": _HOUR,
        **{
            name: _text(name) for name in ("session_id", "subagent", "provider", "model", "client", "project", "key_id")
        },
    },
    where=f"{TIMED} AND R.session_id IS NOT NULL",
    index=("session_id", "hour"),
)
"""The calls that belong to a session, by session and subagent too: read only for the
per-session view and the ``session`` filter, so the many sessions do not multiply the rows
every other stat reads."""

TIMING_BUCKETS = "requests_timing_buckets"
BUCKETS_PER_DECADE = 40
TIMING_LOWS = (0.0, *(10 ** (i / BUCKETS_PER_DECADE) for i in range(8 * BUCKETS_PER_DECADE)))
"""Each timing bucket's lower bound in milliseconds: [0, 1) ms, then 40 per decade (each
6% wider than the one before) up to 10^8 ms. A percentile read from these counts lies in
the bucket of the exact one (``web/timing.py``), at a fixed cost however many calls there were."""


def _bucket(column: str) -> tuple[str, str]:
    """The timing bucket of ``R.column``: an index seek in the bounds table, so the triggers
    need no math functions (SQLite builds without them still write rows)."""
    return (
        "INTEGER",
        f"coalesce((SELECT bucket FROM {TIMING_BUCKETS} WHERE low <= R.{column} ORDER BY low DESC LIMIT 1), 0)",
    )


def _timing(table: str, column: str, where: str) -> Rollup:
    keys = {"day": _DAY, "provider": _text("provider"), "model": _text("model"), "bucket": _bucket(column)}
    counted = f"{TIMED} AND typeof(R.{column}) IN ('real', 'integer') AND R.{column} >= 0 AND {where}"
    return Rollup(table, keys, where=counted, sums={"calls": ("INTEGER", "1")})


DURATIONS = _timing("requests_durations_daily", "duration_ms", "coalesce(R.usage_status, '') != 'none'")
"""How many calls took how long, per UTC day, provider, model and bucket: the p50/p95 of
``/stats/by-model`` (a request that owes no usage -- a model list -- is not a call)."""
FIRST_TOKENS = _timing("requests_first_tokens_daily", "ttft_ms", "1")
"""The same for the time to the first token of streamed calls."""
ROLLUPS = (HOURLY, SESSIONS, DURATIONS, FIRST_TOKENS)
KEYS = HOURLY.keys
_EVENTS = ("insert", "delete", "update")


def _upsert(rollup: Rollup, row: str, sign: str) -> str:
    """Add (sign '') or subtract (sign '-') the ``row`` (NEW or OLD) to its hour's sums."""
    names = [*rollup.keys, *rollup.sums]
    values = [*(expr for _, expr in rollup.keys.values()), *(f"{sign}{expr}" for _, expr in rollup.sums.values())]
    sets = ", ".join(f"{name} = {name} + excluded.{name}" for name in rollup.sums)
    # "WHERE" is required here: it tells SQLite's parser the ON belongs to the upsert.
    sql = (
        f"INSERT INTO {rollup.table} ({', '.join(names)}) SELECT {', '.join(values)} "
        f"WHERE {rollup.where} ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {sets};"
    )
    return sql.replace("R.", f"{row}.")


def drop(db: Database) -> None:
    """Drop the rollups and their triggers (``ensure`` makes them again): a migration that
    rewrites many rows does so first, rather than have the old triggers follow each row."""
    for rollup in ROLLUPS:
        for event in _EVENTS:
            db.execute(f"DROP TRIGGER IF EXISTS {rollup.table}_{event}")
        db.execute(f"DROP TABLE IF EXISTS {rollup.table}")
    db.execute(f"DROP TABLE IF EXISTS {TIMING_BUCKETS}")
    db.execute("DROP TABLE IF EXISTS requests_hourly_definition")


REVISED = " UPDATE requests_revision SET n = n + 1;"
"""A delete or update changes the past: the stats' kept sums of it are then read again
(``web/past_cache.py``); an insert does not (new rows are checked by their time)."""


def rebuild(db: Database) -> None:
    """(Re)make every rollup and its triggers from the current definitions and rows."""
    db.execute("CREATE TABLE IF NOT EXISTS requests_revision (n INTEGER NOT NULL)")
    if db.execute("SELECT count(*) FROM requests_revision").fetchone()[0] == 0:
        db.execute("INSERT INTO requests_revision VALUES (0)")
    db.execute("UPDATE requests_revision SET n = n + 1")  # rebuilt: whatever was kept of it is stale
    db.execute(f"DROP TABLE IF EXISTS {TIMING_BUCKETS}")
    db.execute(f"CREATE TABLE {TIMING_BUCKETS} (bucket INTEGER PRIMARY KEY, low REAL NOT NULL UNIQUE)")
    db.conn.executemany(f"INSERT INTO {TIMING_BUCKETS} VALUES (?, ?)", list(enumerate(TIMING_LOWS)))
    for rollup in ROLLUPS:
        for event in _EVENTS:
            db.execute(f"DROP TRIGGER IF EXISTS {rollup.table}_{event}")
        db.execute(f"DROP TABLE IF EXISTS {rollup.table}")
        keys = ", ".join(f"{name} {sql_type} NOT NULL" for name, (sql_type, _) in rollup.keys.items())
        sums = ", ".join(f"{name} {sql_type} NOT NULL DEFAULT 0" for name, (sql_type, _) in rollup.sums.items())
        db.execute(
            f"CREATE TABLE {rollup.table} ({keys}, {sums}, PRIMARY KEY ({', '.join(rollup.keys)})) WITHOUT ROWID"
        )
        if rollup.index:
            db.execute(
                f"CREATE INDEX {rollup.table}_by_{rollup.index[0]} ON {rollup.table} ({', '.join(rollup.index)})"
            )
        group = ", ".join(expr for _, expr in rollup.keys.values())
        totals = ", ".join(f"sum({expr})" for _, expr in rollup.sums.values())
        db.execute(
            f"INSERT INTO {rollup.table} ({', '.join([*rollup.keys, *rollup.sums])}) "
            f"SELECT {group}, {totals} FROM requests AS R WHERE {rollup.where} GROUP BY {group}"
        )
        bodies = {
            "insert": _upsert(rollup, "NEW", ""),
            "delete": _upsert(rollup, "OLD", "-") + REVISED,
            "update": _upsert(rollup, "OLD", "-") + " " + _upsert(rollup, "NEW", "") + REVISED,
        }
        for event in _EVENTS:
            db.execute(
                f"CREATE TRIGGER {rollup.table}_{event} AFTER {event.upper()} ON requests BEGIN {bodies[event]} END"
            )


def _definition() -> str:
    return hashlib.sha256(repr((ROLLUPS, REVISED, TIMING_LOWS)).encode()).hexdigest()[:16]


def ensure(db: Database) -> None:
    """Rebuild the rollups when one is missing or they were built from other definitions.

    In one ``BEGIN IMMEDIATE`` transaction, the definition read again inside it: two
    processes opening the database at once (the proxy and a report) rebuild it once, a
    writer waits rather than slipping rows past the rebuild, and a reader never sees a
    rollup half made. A rebuild of a large database takes seconds, hence the long wait."""
    if _built(db) == _definition():
        return
    conn = db.conn
    busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 120000")
    in_transaction = conn.in_transaction
    if in_transaction:
        conn.commit()
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _built(db) != _definition():
                rebuild(db)
                conn.execute("CREATE TABLE IF NOT EXISTS requests_hourly_definition (definition TEXT NOT NULL)")
                conn.execute("DELETE FROM requests_hourly_definition")
                conn.execute("INSERT INTO requests_hourly_definition VALUES (?)", [_definition()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")


def _built(db: Database) -> str | None:
    """The definition the rollups were built with; None when there is none (or a rollup is missing)."""
    tables = {row[0] for row in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if any(r.table not in tables for r in ROLLUPS) or "requests_hourly_definition" not in tables:
        return None
    row = db.conn.execute("SELECT definition FROM requests_hourly_definition").fetchone()
    return row[0] if row else None
