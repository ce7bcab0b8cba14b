"""``requests_hourly``: the stats' sums per UTC hour, provider, model and client.

Kept by triggers on ``requests`` (insert, delete, update), so the stats read whole hours
from it and only the partial hours at the edges of a range from ``requests``
(``web/queries.py``). ``SUMS`` is the one definition of every figure, used both to keep
the table and to read raw rows; NULL keys are stored as ''. The table is derived data:
``ensure`` (run after the migrations) rebuilds it, with its triggers, from the rows
whenever these definitions differ from the ones it was built with.
"""

from __future__ import annotations

import hashlib

from sqlite_utils import Database

from ..accounting.pricing import STANDARD_TIERS

_STANDARD_TIERS = ", ".join(f"'{tier}'" for tier in sorted(STANDARD_TIERS))

ERROR = "(coalesce(R.usage_status, '') != 'none' AND (R.error IS NOT NULL OR coalesce(R.status_code, 0) >= 400))"
"""A failed call: an error, or an HTTP error status -- except for a request that owes no
usage (``usage_status`` 'none': a pre-connect, a model list), which is traffic, not a call."""

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
}
KEYS: dict[str, tuple[str, str]] = {
    # name -> (SQL type, value for row ``R``)
    "hour": ("INTEGER", "CAST(R.timestamp / 3600 AS INTEGER) * 3600"),  # the UTC hour's start, Unix seconds
    "provider": ("TEXT", "coalesce(R.provider, '')"),
    "model": ("TEXT", "coalesce(R.model, '')"),
    "client": ("TEXT", "coalesce(R.client, '')"),
}
TIMED = "typeof(R.timestamp) IN ('real', 'integer')"
"""A row with a time (the rest -- text a migration could not read as one -- is in no range)."""
_EVENTS = ("insert", "delete", "update")


def _upsert(row: str, sign: str) -> str:
    """Add (sign '') or subtract (sign '-') the ``row`` (NEW or OLD) to its hour's sums."""
    names = [*KEYS, *SUMS]
    values = [*(expr for _, expr in KEYS.values()), *(f"{sign}{expr}" for _, expr in SUMS.values())]
    sets = ", ".join(f"{name} = {name} + excluded.{name}" for name in SUMS)
    # "WHERE" is required here: it tells SQLite's parser the ON belongs to the upsert.
    sql = (
        f"INSERT INTO requests_hourly ({', '.join(names)}) SELECT {', '.join(values)} "
        f"WHERE {TIMED} ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET {sets};"
    )
    return sql.replace("R.", f"{row}.")


def drop(db: Database) -> None:
    """Drop the rollup and its triggers (``ensure`` makes them again): a migration that
    rewrites many rows does so first, rather than have the old triggers follow each row."""
    for event in _EVENTS:
        db.execute(f"DROP TRIGGER IF EXISTS requests_hourly_{event}")
    db.execute("DROP TABLE IF EXISTS requests_hourly")
    db.execute("DROP TABLE IF EXISTS requests_hourly_definition")


def rebuild(db: Database) -> None:
    """(Re)make ``requests_hourly`` and its triggers from the current definitions and rows."""
    for event in _EVENTS:
        db.execute(f"DROP TRIGGER IF EXISTS requests_hourly_{event}")
    db.execute("DROP TABLE IF EXISTS requests_hourly")
    keys = ", ".join(f"{name} {sql_type} NOT NULL" for name, (sql_type, _) in KEYS.items())
    sums = ", ".join(f"{name} {sql_type} NOT NULL DEFAULT 0" for name, (sql_type, _) in SUMS.items())
    db.execute(f"CREATE TABLE requests_hourly ({keys}, {sums}, PRIMARY KEY ({', '.join(KEYS)})) WITHOUT ROWID")
    group = ", ".join(expr for _, expr in KEYS.values())
    totals = ", ".join(f"sum({expr})" for _, expr in SUMS.values())
    db.execute(
        f"INSERT INTO requests_hourly ({', '.join([*KEYS, *SUMS])}) "
        f"SELECT {group}, {totals} FROM requests AS R WHERE {TIMED} GROUP BY {group}"
    )
    bodies = {
        "insert": _upsert("NEW", ""),
        "delete": _upsert("OLD", "-"),
        "update": _upsert("OLD", "-") + " " + _upsert("NEW", ""),
    }
    for event in _EVENTS:
        db.execute(
            f"CREATE TRIGGER requests_hourly_{event} AFTER {event.upper()} ON requests BEGIN {bodies[event]} END"
        )


def _definition() -> str:
    return hashlib.sha256(repr((KEYS, SUMS)).encode()).hexdigest()[:16]


def ensure(db: Database) -> None:
    """Rebuild the rollup when it is missing or was built from other definitions.

    In one ``BEGIN IMMEDIATE`` transaction, the definition read again inside it: two
    processes opening the database at once (the proxy and a report) rebuild it once, a
    writer waits rather than slipping rows past the rebuild, and a reader never sees the
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
    """The definition the rollup was built with; None when there is none (or no rollup)."""
    tables = {row[0] for row in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "requests_hourly" not in tables or "requests_hourly_definition" not in tables:
        return None
    row = db.conn.execute("SELECT definition FROM requests_hourly_definition").fetchone()
    return row[0] if row else None
