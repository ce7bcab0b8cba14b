"""The ``requests`` table, built by ordered migrations (never edited once shipped).

``m001`` is the seed's table exactly as it was, created only if missing, so a seed-era
``usage.db`` is adopted as it is and then migrated forward. Every later column is added
by its own migration; a query written against the seed's columns keeps working. The
columns they end with are ``accounting.row.COLUMNS`` (a test holds them to it).
Uses sqlite-utils' migrations (https://sqlite-utils.datasette.io/en/stable/python-api.html).
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("llm_usage")

SEED_COLUMNS = {
    "id": int,
    "timestamp": str,
    "provider": str,
    "model": str,
    "endpoint": str,
    "method": str,
    "input_tokens": int,
    "output_tokens": int,
    "total_tokens": int,
    "cost_usd": float,
    "duration_ms": float,
    "streaming": int,
    "status_code": int,
    "error": str,
}


def _add_columns(db: Database, columns: dict[str, type]) -> None:
    table = db.table("requests")
    existing = set(table.columns_dict)
    for name, col_type in columns.items():
        if name not in existing:
            table.add_column(name, col_type)


@MIGRATIONS()
def m001_requests(db: Database) -> None:
    if not db.table("requests").exists():
        db.table("requests").create(SEED_COLUMNS, pk="id")
    for column in ("timestamp", "provider", "model"):
        db.table("requests").create_index([column], if_not_exists=True)


@MIGRATIONS()
def m002_usage_details(db: Database) -> None:
    _add_columns(
        db,
        {
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "reasoning_tokens": int,
            "ttft_ms": float,
            "cost_source": str,
        },
    )


@MIGRATIONS()
def m003_usage_status(db: Database) -> None:
    _add_columns(db, {"usage_status": str})


@MIGRATIONS()
def m004_client_and_cache_savings(db: Database) -> None:
    _add_columns(db, {"client": str, "cache_savings_usd": float})


# m005: what the stats API needs to answer in milliseconds on a year of traffic.
# - Timestamps in one canonical form (``2026-11-29T05:45:55.123+00:00``) so that time ranges
#   are plain string ranges over the ``timestamp`` index; a row whose timestamp SQLite
#   cannot parse is left as it was.
# - ``(provider|model|client, timestamp)`` indexes for the filtered, newest-first request log.
# - ``requests_hourly``: the same sums per UTC hour, provider, model and client, kept by
#   triggers (insert, delete, update). Stats read whole hours from it and only the partial
#   hours at the edges of a range from ``requests``. NULL keys are stored as ''.
_HOURLY_SUMS = (
    # column, type, value added per row (``R`` is NEW or OLD)
    ("requests", "INTEGER", "1"),
    ("input_tokens", "INTEGER", "coalesce(R.input_tokens, 0)"),
    ("output_tokens", "INTEGER", "coalesce(R.output_tokens, 0)"),
    ("total_tokens", "INTEGER", "coalesce(R.total_tokens, 0)"),
    ("cache_read_tokens", "INTEGER", "coalesce(R.cache_read_tokens, 0)"),
    ("cache_write_tokens", "INTEGER", "coalesce(R.cache_write_tokens, 0)"),
    ("reasoning_tokens", "INTEGER", "coalesce(R.reasoning_tokens, 0)"),
    ("cost_usd", "REAL", "coalesce(R.cost_usd, 0)"),
    ("priced_requests", "INTEGER", "(R.cost_usd IS NOT NULL)"),
    ("cache_savings_usd", "REAL", "coalesce(R.cache_savings_usd, 0)"),
    ("error_requests", "INTEGER", "(R.error IS NOT NULL OR coalesce(R.status_code, 0) >= 400)"),
    (
        "unpriced_requests",
        "INTEGER",
        "(R.cost_usd IS NULL AND R.error IS NULL AND coalesce(R.status_code, 0) < 400"
        " AND (R.input_tokens IS NOT NULL OR R.output_tokens IS NOT NULL))",
    ),
    ("partial_requests", "INTEGER", "(coalesce(R.usage_status, '') = 'partial')"),
    ("missing_usage_requests", "INTEGER", "(coalesce(R.usage_status, '') = 'missing')"),
    ("streaming_requests", "INTEGER", "(coalesce(R.streaming, 0) != 0)"),
    ("duration_ms", "REAL", "coalesce(R.duration_ms, 0)"),
    ("timed_requests", "INTEGER", "(R.duration_ms IS NOT NULL)"),
)
_HOURLY_KEYS = (
    ("hour", "substr(R.timestamp, 1, 13)"),
    ("provider", "coalesce(R.provider, '')"),
    ("model", "coalesce(R.model, '')"),
    ("client", "coalesce(R.client, '')"),
)


_CANONICAL_TIMESTAMP = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]+00:00"
)


def _hourly_upsert(row: str, sign: str) -> str:
    """Add (sign '') or subtract (sign '-') the ``row`` (NEW or OLD) to its hour's sums."""
    names = [name for name, _ in _HOURLY_KEYS] + [name for name, _, _ in _HOURLY_SUMS]
    values = [expr for _, expr in _HOURLY_KEYS] + [f"{sign}{expr}" for _, _, expr in _HOURLY_SUMS]
    keys = ", ".join(name for name, _ in _HOURLY_KEYS)
    sets = ", ".join(f"{name} = {name} + excluded.{name}" for name, _, _ in _HOURLY_SUMS)
    # "WHERE" is required here: it tells SQLite's parser the ON belongs to the upsert.
    sql = (
        f"INSERT INTO requests_hourly ({', '.join(names)}) SELECT {', '.join(values)} "
        f"WHERE R.timestamp IS NOT NULL ON CONFLICT ({keys}) DO UPDATE SET {sets};"
    )
    return sql.replace("R.", f"{row}.")


@MIGRATIONS()
def m005_stats_rollup_and_indexes(db: Database) -> None:
    canonical = "strftime('%Y-%m-%dT%H:%M:%f+00:00', timestamp)"
    db.execute(
        f"UPDATE requests SET timestamp = {canonical} "
        f"WHERE timestamp NOT GLOB '{_CANONICAL_TIMESTAMP}' AND {canonical} IS NOT NULL"
    )
    for column in ("provider", "model", "client"):
        db.table("requests").create_index([column, "timestamp"], if_not_exists=True)
    sums = ", ".join(f"{name} {sql_type} NOT NULL DEFAULT 0" for name, sql_type, _ in _HOURLY_SUMS)
    db.execute(
        "CREATE TABLE IF NOT EXISTS requests_hourly (hour TEXT NOT NULL, provider TEXT NOT NULL, "
        f"model TEXT NOT NULL, client TEXT NOT NULL, {sums}, PRIMARY KEY (hour, provider, model, client)) WITHOUT ROWID"
    )
    names = [name for name, _ in _HOURLY_KEYS] + [name for name, _, _ in _HOURLY_SUMS]
    keys = ", ".join(expr for _, expr in _HOURLY_KEYS)
    sums_sql = ", ".join(f"sum({expr})" for _, _, expr in _HOURLY_SUMS)
    db.execute(
        f"INSERT INTO requests_hourly ({', '.join(names)}) "
        f"SELECT {keys}, {sums_sql} FROM requests AS R WHERE R.timestamp IS NOT NULL GROUP BY {keys}"
    )
    for event, body in (
        ("INSERT", _hourly_upsert("NEW", "")),
        ("DELETE", _hourly_upsert("OLD", "-")),
        ("UPDATE", _hourly_upsert("OLD", "-") + " " + _hourly_upsert("NEW", "")),
    ):
        name = f"requests_hourly_{event.lower()}"
        db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON requests BEGIN {body} END")


def migrate(db: Database) -> None:
    """Bring ``db`` to the current schema (idempotent) and turn on WAL."""
    db.enable_wal()
    MIGRATIONS.apply(db)


def open_database(path: str) -> Database:
    """Open (creating if needed) and migrate the database; raises on an unusable path."""
    db = Database(path)
    migrate(db)
    return db
