"""The ``requests`` table, built by ordered migrations (never edited once shipped).

``m001`` is the seed's table exactly as it was, created only if missing, so a seed-era
``usage.db`` is adopted as it is and then migrated forward. Every later column is added
by its own migration; a query written against the seed's columns keeps working.
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


ROW_COLUMNS = (
    *[c for c in SEED_COLUMNS if c != "id"],
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "ttft_ms",
    "cost_source",
    "usage_status",
    "client",
    "cache_savings_usd",
)
"""Every column a logged call fills, in the order the migrations add them."""


def migrate(db: Database) -> None:
    """Bring ``db`` to the current schema (idempotent) and turn on WAL."""
    db.enable_wal()
    MIGRATIONS.apply(db)
