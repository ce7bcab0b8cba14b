"""``report``: the spend as a table in the terminal -- per ``daily`` (default), ``weekly``
or ``monthly`` period, per coding session, per model or per project -- the way ccusage
shows Claude Code's local logs, but for every client that went through the proxy.

The figures are the stats API's own: each view runs the endpoint's query
(``/stats/timeseries``, ``/stats/by-session``, ``/stats/by-model``, ``/stats/by-project``)
on the same database with the same filters, so a table agrees with the dashboard to the
cent. ``--json`` prints that answer, plus the totals row. Periods are calendar days, ISO
weeks and months in ``--tz`` (default: this machine's zone, not UTC: a person reads a
report in their own day). Colour only on a terminal (``rich``; ``NO_COLOR`` is honoured).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..web import queries, timing
from ..web.params import Filters, Page, ParamError, Series, parse_filters, parse_tz
from ..web.reader import open_read_only
from .options import add_filters, filter_values

Query = Callable[[sqlite3.Connection, Filters, int], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    field: str
    kind: str = "count"
    """How a value shows: ``count`` (1,234), ``usd``, ``text``, ``day``, ``month``, ``time``,
    ``seconds`` (a length), ``ms`` (a latency), ``rate`` (per second)."""
    total: bool = False
    """Summed in the totals row."""
    drop: int = 0
    """On a narrow terminal, the higher the sooner this column is left out; 0: always shown."""


@dataclass(frozen=True, slots=True)
class View:
    about: str
    rows_key: str
    """Where the API's answer lists the rows."""
    query: Query
    columns: tuple[Column, ...]
    default: Callable[[date], dict[str, str]]
    """The window when none is given, from today (local): whole periods."""


_TOKENS = (
    Column("Calls", "requests", total=True),
    Column("Input", "input_tokens", total=True, drop=5),
    Column("Output", "output_tokens", total=True, drop=4),
    Column("Cache read", "cache_read_tokens", total=True, drop=8),
    Column("Cache write", "cache_write_tokens", total=True, drop=9),
    Column("Cost", "cost_usd", "usd", total=True),
)


def _series(bucket: str) -> Query:
    return lambda conn, filters, _limit: queries.timeseries(conn, filters, Series(bucket))


def _last_days(days: int) -> Callable[[date], dict[str, str]]:
    return lambda today: {"since": (today - timedelta(days=days - 1)).isoformat()}


def _last_weeks(today: date) -> dict[str, str]:
    return {"since": (today - timedelta(days=today.weekday(), weeks=11)).isoformat()}


def _last_months(today: date) -> dict[str, str]:
    month = today.year * 12 + today.month - 1 - 11
    return {"since": date(month // 12, month % 12 + 1, 1).isoformat()}


VIEWS: dict[str, View] = {
    "daily": View("per day, the last 30 days", "points", _series("day"),
                  (Column("Day", "start", "day"), *_TOKENS), _last_days(30)),
    "weekly": View("per ISO week (from Monday), the last 12", "points", _series("week"),
                   (Column("Week of", "start", "day"), *_TOKENS), _last_weeks),
    "monthly": View("per calendar month, the last 12", "points", _series("month"),
                    (Column("Month", "start", "month"), *_TOKENS), _last_months),
    "sessions": View(
        "coding sessions, latest first, the last 30 days", "sessions",
        lambda conn, filters, limit: queries.by_session(conn, filters, Page(limit=limit)),
        (Column("Session", "session_id", "text"), Column("Started", "first_call", "time"),
         Column("Length", "duration_s", "seconds", drop=6), Column("Client", "client", "text", drop=3),
         Column("Project", "project", "text", drop=2), Column("Models", "models", "text", drop=7),
         *_TOKENS),
        _last_days(30),
    ),
    "models": View(
        "per provider and model, the last 30 days", "models",
        lambda conn, filters, _limit: timing.by_model(conn, filters),
        (Column("Provider", "provider", "text"), Column("Model", "model", "text"),
         Column("p50", "duration_p50_ms", "ms", drop=3), Column("p95", "duration_p95_ms", "ms", drop=6),
         Column("First token p50", "ttft_p50_ms", "ms", drop=7),
         Column("Tokens/s", "output_tokens_per_s", "rate", drop=2),
         *_TOKENS),
        _last_days(30),
    ),
    "projects": View(
        "per project, the last 30 days", "projects",
        lambda conn, filters, _limit: queries.by_project(conn, filters),
        (Column("Project", "project", "text"), *_TOKENS),
        _last_days(30),
    ),
}  # fmt: skip


def arguments(command: Any) -> None:
    command.add_argument("view", nargs="?", default="daily", choices=list(VIEWS),
                         help="; ".join(f"{name}: {view.about}" for name, view in VIEWS.items()))  # fmt: skip
    add_filters(command, but=frozenset({"tz"}))
    command.add_argument("--tz", help="IANA time zone of the periods (default: this machine's)")
    command.add_argument("--all", action="store_true", help="the whole history (no default window)")
    command.add_argument("--limit", type=int, default=20, help="sessions listed (default 20, at most 500)")
    command.add_argument("--json", action="store_true", help="the stats API's answer and the totals, as JSON")


def local_zone() -> str:
    """This machine's IANA zone name (``TZ``, else ``/etc/localtime``'s link), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        link = os.readlink("/etc/localtime")
        candidates.append(link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else "")
    except OSError:
        pass
    for name in candidates:
        try:
            if name:
                parse_tz(name)
                return name
        except ParamError:
            continue
    return "UTC"


def build(args: argparse.Namespace, conn: sqlite3.Connection, now: datetime) -> dict[str, Any]:
    """The view's answer (as the stats API gives it) and its totals row; ``ParamError`` on bad options."""
    view = VIEWS[args.view]
    values = filter_values(args)
    values.setdefault("tz", local_zone())
    tz = parse_tz(values["tz"])
    if not args.all and not {"days", "since", "until"} & values.keys():
        values.update(view.default(now.astimezone(tz).date()))
    elif args.all and {"days", "since", "until"} & values.keys():
        raise ParamError("all: cannot be combined with days/since/until")
    if not 1 <= args.limit <= 500:
        raise ParamError(f"limit: must be from 1 to 500, not {args.limit}")
    filters = parse_filters(values, now)
    answer = view.query(conn, filters, args.limit)
    rows = [row for row in answer[view.rows_key] if row["requests"]]  # an empty period is no line
    totals = {c.field: _total(rows, c.field) for c in view.columns if c.total}
    totals["unpriced_requests"] = sum(row.get("unpriced_requests") or 0 for row in rows)
    totals["error_requests"] = sum(row.get("error_requests") or 0 for row in rows)
    answer = {name: value for name, value in answer.items() if name != view.rows_key}  # ``rows`` has them
    return {"view": args.view, **answer, "rows": rows, "totals": totals}


def _total(rows: Sequence[dict[str, Any]], field: str) -> Any:
    values = [row.get(field) for row in rows]
    if field == "cost_usd":
        priced = [v for v in values if v is not None]
        return round(sum(priced), 10) if priced or not rows else None
    return sum(v or 0 for v in values)


# ------------------------------------------------------------------ the table


def usd(value: float | None) -> str:
    """Dollars to the cent; below a cent, to four places (a cheap model's day is not "$0.00")."""
    if value is None:
        return "unpriced"
    if value != 0 and abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def _cell(value: Any, kind: str, tz: ZoneInfo) -> str:
    if value is None or value == []:
        return "unpriced" if kind == "usd" else "-"
    if kind == "usd":
        return usd(value)
    if kind == "count":
        return f"{int(value):,}"
    if kind in ("day", "month"):
        moment = datetime.fromisoformat(value)
        return moment.strftime("%Y-%m-%d" if kind == "day" else "%Y-%m")
    if kind == "time":
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if kind == "ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "seconds":
        minutes, seconds = divmod(int(value), 60)
        return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {seconds:02d}s"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value[:3]) + (f" +{len(value) - 3}" if len(value) > 3 else "")
    return str(value)


def _table(report: dict[str, Any], columns: Sequence[Column], db_path: str, tz: ZoneInfo) -> Any:
    from rich.table import Table
    from rich.text import Text

    window = report["window"]
    since = _cell(window["since"], "time", tz) if window["since"] else "the first call"
    until = _cell(window["until"], "time", tz) if window["until"] else "now"
    table = Table(
        title=Text(f"llm-usage · {report['view']} · {since} → {until} ({tz.key})"),
        caption=Text(db_path), show_footer=True, header_style="bold", footer_style="bold",
    )  # fmt: skip
    first_total = next(i for i, c in enumerate(columns) if c.total)
    shown = f"Total ({len(report['rows'])} of {report['total_sessions']:,})" if "total_sessions" in report else "Total"
    for index, column in enumerate(columns):
        numeric = column.kind in ("count", "usd", "seconds", "ms", "rate")
        footer = _cell(report["totals"][column.field], column.kind, tz) if column.total else ""
        table.add_column(
            column.title, footer=shown if index == 0 and index < first_total else footer,
            justify="right" if numeric else "left", no_wrap=column.kind != "text",
            overflow="fold" if column.field == "session_id" else "ellipsis",
            style="green" if column.kind == "usd" else None,
        )  # fmt: skip
    for row in report["rows"]:  # Text: a model name or session id is shown, never read as markup
        table.add_row(*(Text(_cell(row.get(c.field), c.kind, tz)) for c in columns))
    return table


def render(report: dict[str, Any], db_path: str, out: Any) -> None:
    """The table, fitted to the terminal: on a narrow one the least needed columns go first
    (``Column.drop``), and a note says so; a pipe gets every column."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=out, width=None if out.isatty() else 220, highlight=False,
                      color_system=None if os.environ.get("NO_COLOR") else "auto")  # fmt: skip
    tz = ZoneInfo(report["window"]["tz"])
    if not report["rows"]:
        window = report["window"]
        since = _cell(window["since"], "time", tz) if window["since"] else "the first call"
        until = _cell(window["until"], "time", tz) if window["until"] else "now"
        console.print(Text(f"No calls in this window ({since} → {until}, {tz.key}) in {db_path}."))
        return
    columns = list(VIEWS[report["view"]].columns)
    table = _table(report, columns, db_path, tz)
    left_out = []
    unbounded = console.options.update(max_width=100_000)
    while console.measure(table, options=unbounded).maximum > console.width and any(c.drop for c in columns):
        least = max(columns, key=lambda c: c.drop)
        columns.remove(least)
        left_out.append(least.title)
        table = _table(report, columns, db_path, tz)
    console.print(table)
    notes = []
    if left_out:
        notes.append(f"a narrow terminal: {', '.join(left_out)} left out (--json has every figure)")
    if report["totals"]["unpriced_requests"]:
        notes.append(f"{report['totals']['unpriced_requests']:,} call(s) unpriced (a model without a price): "
                     "not in the cost; /stats/requests?status=unpriced lists them")  # fmt: skip
    if report["totals"]["error_requests"]:
        notes.append(f"{report['totals']['error_requests']:,} call(s) failed")
    for note in notes:
        console.print(Text(note, style="dim"))


def run(args: argparse.Namespace, db_path: str) -> int:
    if not Path(db_path).is_file():
        print(f"report: no database at {db_path} (give --db, or set PROXY_DB_PATH)", file=sys.stderr)
        return 2
    conn = open_read_only(db_path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'requests'").fetchone() is None:
            print(f"No calls recorded in {db_path} yet.")
            return 0
        report = build(args, conn, datetime.now(UTC))
    except ParamError as exc:
        print(f"report: --{exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"report: cannot read {db_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        render(report, db_path, sys.stdout)
    return 0
