"""The budgets' side of the database: what a scope spent in a period, and which alerts
were already sent for it (so a restart does not send them again)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ..config.budgets import Budget

_DASHED_DATE = "-" + "[0-9]" * 4 + "-" + "[0-9]" * 2 + "-" + "[0-9]" * 2
_PLAIN_DATE = "-" + "[0-9]" * 8
_COLUMNS = {"provider": "provider", "client": "client", "project": "project", "key": "key_id"}


def database_spend(path: str, budget: Budget, start: datetime, end: datetime) -> Decimal:
    """The priced cost of the calls in ``budget``'s scope that started in ``[start, end)``.
    A model scope covers the model's dated versions too (``budget.tracker.covers``)."""
    if not Path(path).is_file():
        return Decimal(0)
    clauses = ["timestamp >= ?", "timestamp < ?"]
    params: list[object] = [start.timestamp(), end.timestamp()]
    for name, value in budget.scope:
        if name == "model":  # the model, or a dated version of it (tracker.DATED)
            clauses.append(
                f"(model = ? OR (substr(model, 1, ?) = ? AND (substr(model, ?) GLOB '{_DASHED_DATE}' "
                f"OR substr(model, ?) GLOB '{_PLAIN_DATE}')))"
            )
            params += [value, len(value), value, len(value) + 1, len(value) + 1]
        else:
            clauses.append(f"{_COLUMNS[name]} = ?")
            params.append(value)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(f"SELECT total(cost_usd) FROM requests WHERE {' AND '.join(clauses)}", params).fetchone()
    finally:
        conn.close()
    return Decimal(str(row[0] or 0))


def _setting(budget: Budget, start: datetime) -> str:
    return f"budget_alert:{budget.name}:{start.isoformat()}"


def fired_share(path: str, budget: Budget, start: datetime) -> Decimal:
    """The highest alert share already sent for ``budget``'s period starting at ``start``."""
    if not Path(path).is_file():
        return Decimal(0)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT value FROM llm_usage_settings WHERE name = ?", [_setting(budget, start)]).fetchone()
    except sqlite3.OperationalError:  # an old database without the table yet
        row = None
    finally:
        conn.close()
    return Decimal(row[0]) if row else Decimal(0)


def remember_share(path: str, budget: Budget, start: datetime, share: Decimal) -> None:
    conn = sqlite3.connect(path, timeout=5)
    try:
        with conn:
            conn.execute(
                "INSERT INTO llm_usage_settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [_setting(budget, start), str(share)],
            )
    finally:
        conn.close()
