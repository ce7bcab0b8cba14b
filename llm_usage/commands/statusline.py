"""``statusline``: one short line for Claude Code's status bar -- today's spend, this
session's, and the model -- from the proxy's database.

Claude Code runs the ``statusLine`` command after each message and passes it JSON on
standard input, ``session_id`` among it (https://docs.anthropic.com/en/docs/claude-code/statusline);
that is the ``X-Claude-Code-Session-Id`` its calls carry, so the session's spend is a lookup
in the ``(session_id, timestamp)`` index. Today is the local calendar day (the rollup's
hours and today's rows). Everything here is plain ``sqlite3`` and the standard library: it
answers in tens of milliseconds on a million rows.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def arguments(command: Any) -> None:
    """None beyond ``--db``; the session comes on standard input."""


def _session(stdin: Any) -> tuple[str | None, str | None]:
    """Claude Code's session id and model name from its JSON, if any came."""
    if stdin.isatty():
        return None, None
    try:
        data = json.loads(stdin.read() or "{}")
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    model = data.get("model")
    name = model.get("display_name") or model.get("id") if isinstance(model, dict) else None
    session = data.get("session_id")
    return (session if isinstance(session, str) else None), (name if isinstance(name, str) else None)


def _usd(value: float | None) -> str:
    amount = value or 0.0
    return f"${amount:,.2f}" if amount >= 0.1 or amount == 0 else f"${amount:.3f}"


def line(conn: sqlite3.Connection, session: str | None, model: str | None, now: datetime) -> str:
    midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today = conn.execute("SELECT total(cost_usd) FROM requests WHERE timestamp >= ?", [midnight]).fetchone()[0]
    parts = [f"{_usd(today)} today"]
    if session:
        spent, calls, last_model = conn.execute(
            "SELECT total(cost_usd), count(*), (SELECT model FROM requests WHERE session_id = :s "
            "ORDER BY timestamp DESC LIMIT 1) FROM requests WHERE session_id = :s",
            {"s": session},
        ).fetchone()
        parts.append(f"{_usd(spent)} this session ({calls} call{'s' if calls != 1 else ''})")
        model = last_model or model
    if model is None:
        row = conn.execute("SELECT model FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()
        model = row[0] if row else None
    if model:
        parts.append(model)
    return " · ".join(parts)


def run(args: argparse.Namespace, db_path: str) -> int:
    session, model = _session(sys.stdin)
    if not Path(db_path).is_file():
        print("llm-usage: no database yet")
        return 0
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2)
        try:
            print(line(conn, session, model, datetime.now()))
        finally:
            conn.close()
    except sqlite3.Error:  # a status bar shows something short, never a traceback
        print("llm-usage: database busy")
    return 0
