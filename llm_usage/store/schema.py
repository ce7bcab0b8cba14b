"""The ``requests`` table, built by ordered migrations (never edited once shipped).

``m001`` is the seed's table (``timestamp`` REAL Unix seconds), created only if missing, so a
seed-era ``usage.db`` is adopted as it is and then migrated forward. Every later column is added
by its own migration; a query written against the seed's columns keeps working. The
columns they end with are ``accounting.row.COLUMNS`` (a test holds them to it).
Uses sqlite-utils' migrations (https://sqlite-utils.datasette.io/en/stable/python-api.html).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from ..accounting.keys import SALT_SETTING
from . import rollup

logger = logging.getLogger(__name__)
MIGRATIONS = Migrations("llm_usage")

SEED_COLUMNS = {
    "id": int,
    "timestamp": float,
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
# - ``requests_hourly`` (``store/rollup.py``): the same sums per UTC hour, kept by
#   triggers; built after the migrations by ``rollup.ensure``, as for every later change.
_CANONICAL_TIMESTAMP = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]+00:00"
)


@MIGRATIONS()
def m005_stats_rollup_and_indexes(db: Database) -> None:
    canonical = "strftime('%Y-%m-%dT%H:%M:%f+00:00', timestamp)"
    db.execute(
        f"UPDATE requests SET timestamp = {canonical} "
        f"WHERE timestamp NOT GLOB '{_CANONICAL_TIMESTAMP}' AND {canonical} IS NOT NULL"
    )
    for column in ("provider", "model", "client"):
        db.table("requests").create_index([column, "timestamp"], if_not_exists=True)


# m006: the transport a call came by (``http`` or ``websocket``), and the requests that owe
# no usage (``accounting.row.owes_usage``: HEAD/OPTIONS pre-connects, model lists, token
# counting) marked ``usage_status`` 'none' instead of counting as failed calls; a status
# the proxy wrote in place of a provider's message ("HTTP 404") is dropped from them.
# Earlier rows of a socket's handshake (status 101) were whole WebSocket connections whose
# calls were never read: their usage is 'missing'.
# (The rollup, whose error count changed with this, is rebuilt by ``rollup.ensure``.)
_NO_USAGE_ROWS = (
    "method != 'POST' OR endpoint GLOB '*/count_tokens' OR endpoint GLOB '*:countTokens' "
    "OR endpoint GLOB '*/models' OR (endpoint GLOB '*/models/*' AND NOT endpoint GLOB '*/models/*[/:]*')"
)


@MIGRATIONS()
def m006_transport_and_no_usage(db: Database) -> None:
    rollup.drop(db)  # every row is rewritten: without the old triggers following each one
    _add_columns(db, {"transport": str})
    db.execute("UPDATE requests SET transport = CASE WHEN status_code = 101 THEN 'websocket' ELSE 'http' END")
    db.execute(
        "UPDATE requests SET usage_status = 'none', "
        "error = CASE WHEN error GLOB 'HTTP [0-9][0-9][0-9]' THEN NULL ELSE error END "
        f"WHERE ({_NO_USAGE_ROWS}) AND coalesce(status_code, 0) != 101 "
        "AND coalesce(input_tokens, output_tokens) IS NULL"
    )
    # A whole socket logged as one empty row: its calls owed usage that was never read.
    db.execute(
        "UPDATE requests SET usage_status = 'missing' "
        "WHERE status_code = 101 AND coalesce(input_tokens, output_tokens) IS NULL"
    )


# m007: the tier a call was served on, and its cost by billed dimension (JSON), so that a
# row can show where its price came from (the rollup gains the tool fees and the counts of
# tiered and incompletely priced calls).
@MIGRATIONS()
def m007_service_tier_and_cost_breakdown(db: Database) -> None:
    _add_columns(db, {"service_tier": str, "cost_breakdown": str})


# m008: ``timestamp`` back to the seed's REAL Unix seconds. Releases before this one made
# the column TEXT and wrote ISO-8601 there; on the seed's own REAL column they added ISO
# text after the seed's numbers, which sort before any text, so every time range lost one
# kind or the other. ISO text becomes the same instant, to the millisecond it was kept
# with; the seed's numbers stay as they are; text SQLite cannot read as a time stays as it
# was (no time range includes it). A TEXT column is retyped REAL by copying the table once,
# converting on the way (one pass).
_UNIX = (
    "CASE WHEN typeof(timestamp) = 'text' AND julianday(timestamp) IS NOT NULL "
    "THEN round((julianday(timestamp) - 2440587.5) * 86400000.0) / 1000.0 ELSE timestamp END"
)


@MIGRATIONS()
def m008_unix_timestamps(db: Database) -> None:
    rollup.drop(db)  # every row is rewritten: without the old triggers following each one
    table = db.table("requests")
    if table.columns_dict["timestamp"] is float:
        db.execute(f"UPDATE requests SET timestamp = {_UNIX} WHERE typeof(timestamp) = 'text'")
        return
    rows = table.count
    if rows > 100_000:
        logger.info("llm-usage: converting the timestamps of %s rows to Unix seconds (once; ~30 s a million)", rows)
    statements = table.transform_sql(types={"timestamp": float})
    for index, sql in enumerate(statements):
        if sql.startswith("INSERT INTO"):
            insert, select = sql.split("SELECT ", 1)
            column = '"timestamp"'
            assert select.count(column) == 1, select  # sqlite-utils' copy names each column once
            statements[index] = f"{insert}SELECT {select.replace(column, _UNIX)}"
    for sql in statements:
        db.execute(sql)


# m009: how far each file of rows the database could not take at the time has been copied
# into it (``store/spill.py``), recorded with the rows so that none is copied twice.
@MIGRATIONS()
def m009_pending_rows(db: Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS llm_usage_pending (file TEXT PRIMARY KEY, copied INTEGER NOT NULL)")


# m010: who a call was for -- its coding session and subagent, its project, the
# fingerprint of its key (``proxy/attribution.py``, ``accounting/keys.py``) -- indexed for
# the per-session, per-project and per-key stats; and the database's own settings, the
# key fingerprints' salt first.
@MIGRATIONS()
def m010_sessions_projects_keys(db: Database) -> None:
    _add_columns(db, {"session_id": str, "subagent": str, "project": str, "key_id": str})
    for column in ("session_id", "project", "key_id"):
        db.table("requests").create_index([column, "timestamp"], if_not_exists=True)
    db.execute("CREATE TABLE IF NOT EXISTS llm_usage_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "INSERT OR IGNORE INTO llm_usage_settings (name, value) VALUES (?, ?)", [SALT_SETTING, secrets.token_hex(32)]
    )


JOURNAL_MODE = "delete"
"""SQLite's rollback journal, not WAL. WAL maps its ``-shm`` file into memory, and a process
that truncates that file (a sync tool, a cleanup script, an attacker) kills every process
that has it mapped with SIGBUS: the proxy, and all traffic with it. The rollback journal
maps nothing. What it costs -- a write waits for a read in progress to end -- is
milliseconds here: stats queries are short, and rows that wait longer go to the pending
file (``store/writer.py``)."""


def migrate(db: Database) -> None:
    """Bring ``db`` to the current schema (idempotent), in rollback-journal mode."""
    _use_rollback_journal(db)
    MIGRATIONS.apply(db)
    rollup.ensure(db)


def _use_rollback_journal(db: Database) -> None:
    """Leave WAL (earlier releases used it). Needs the database to itself: while another
    connection has it open the switch waits for a later start, with a warning."""
    try:
        mode = db.execute(f"PRAGMA journal_mode={JOURNAL_MODE}").fetchone()[0]
    except sqlite3.OperationalError as exc:  # locked by another connection
        mode = str(exc)
    if mode != JOURNAL_MODE and mode != "memory":
        logger.warning("llm-usage: the database stays in %s mode for now (another program has it open)", mode)


def open_database(path: str, busy_timeout_ms: int = 5000) -> Database:
    """Open (creating if needed) and migrate the database; raises on an unusable path.

    A new file is created readable and writable by its owner only (0600): it says which
    models, tools and projects someone used, and when. SQLite gives its journal the
    same permissions."""
    if path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    db = Database(path)
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # how long a lock held elsewhere is waited for
    migrate(db)
    return db
