"""The stats API's endpoints, as one table: it drives routing (``pages.py``), parameter
validation and the ``/stats`` index.

Each endpoint names the parameters it takes and how to turn their validated values into
a query; parsing happens on the event loop (pure and quick, so a bad parameter is a 400
before any database work), the query on a reader thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import queries, timing
from .exports import EXPORT_PARAMS
from .params import (
    FILTER_PARAMS,
    PAGE_PARAMS,
    SERIES_PARAMS,
    Filters,
    key_by_label,
    parse_filters,
    parse_page,
    parse_series,
)

Query = Callable[[sqlite3.Connection], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Context:
    """What the endpoints read besides the database: the proxy's own state."""

    key_labels: dict[str, str] = field(default_factory=dict)
    """Key fingerprint -> label (``llm_usage_key_labels``)."""
    budgets: Callable[[], dict[str, Any]] = dict
    """``{"budgets": [...], "alerts": [...]}`` now (``budgets/``), ``{}`` without budgets."""
    limits: Callable[[], list[dict[str, Any]]] = list
    """The latest rate-limit state per provider and key (``proxy/limits.py``)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    """``/stats/<name>``."""
    about: str
    params: frozenset[str]
    prepare: Callable[[dict[str, str], datetime, Context], Query]
    """Validated parameter values, the time now and the proxy's state -> the query to run
    (raises ``ParamError``)."""

    @property
    def path(self) -> str:
        return f"/stats/{self.name}"


def _filters(values: dict[str, str], now: datetime, context: Context, default_days: int | None = None) -> Filters:
    """The filters; ``key`` may name a key by its label as well as by its fingerprint."""
    return parse_filters(key_by_label(values, context.key_labels), now, default_days)


def _grouped(view: Callable[[sqlite3.Connection, Filters], dict[str, Any]]) -> Callable[..., Query]:
    def prepare(values: dict[str, str], now: datetime, context: Context) -> Query:
        filters = _filters(values, now, context)
        return lambda conn: view(conn, filters)

    return prepare


def _requests(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters, page = _filters(values, now, context), parse_page(values)
    return lambda conn: queries.recent_requests(conn, filters, page)


def _sessions(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters, page = _filters(values, now, context, default_days=30), parse_page(values)
    return lambda conn: queries.by_session(conn, filters, page)


def _keys(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters = _filters(values, now, context)
    return lambda conn: queries.by_key(conn, filters, context.key_labels)


def _budgets(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters = _filters(values, now, context)
    wanted = {name: getattr(filters, name) for name in ("provider", "model", "client", "project", "key")}
    wanted = {name: value for name, value in wanted.items() if value is not None}

    def query(_conn: sqlite3.Connection) -> dict[str, Any]:
        state = context.budgets() or {"budgets": [], "alerts": []}
        budgets = [b for b in state["budgets"] if all(b["scope"].get(k, v) == v for k, v in wanted.items())]
        return {"budgets": budgets, "alerts": state["alerts"]}

    return query


def _limits(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters = _filters(values, now, context, default_days=1)

    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        latest = [e for e in context.limits() if filters.provider in (None, e["provider"])
                  and filters.key in (None, e["key_id"])]  # fmt: skip
        return {"limits": latest, **queries.upstream_429s(conn, filters)}

    return query


def _timeseries(values: dict[str, str], now: datetime, context: Context) -> Query:
    filters, series = _filters(values, now, context, default_days=30), parse_series(values)
    return lambda conn: queries.timeseries(conn, filters, series, now)


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("summary", "totals, by provider and by client", FILTER_PARAMS, _grouped(queries.summary)),
        Endpoint(
            "by-model",
            "per provider and model, with p50/p95 latency and tokens/s",
            FILTER_PARAMS,
            _grouped(timing.by_model),
        ),
        Endpoint("by-provider", "per provider", FILTER_PARAMS, _grouped(queries.by_provider)),
        Endpoint("by-client", "per calling tool", FILTER_PARAMS, _grouped(queries.by_client)),
        Endpoint("by-project", "per project", FILTER_PARAMS, _grouped(queries.by_project)),
        Endpoint("by-key", "per API key (its fingerprint and label)", FILTER_PARAMS, _keys),
        Endpoint("budgets", "each budget's spend this period, limit, state and reset; alerts", FILTER_PARAMS, _budgets),
        Endpoint("limits", "rate-limit headroom per provider and key; upstream 429s", FILTER_PARAMS, _limits),
        Endpoint(
            "by-session",
            "coding sessions, latest first (30 days unless a window is given)",
            FILTER_PARAMS | {"limit", "offset"},
            _sessions,
        ),
        Endpoint("requests", "the log, newest first, a page at a time", FILTER_PARAMS | PAGE_PARAMS, _requests),
        Endpoint(
            "timeseries", "sums per hour, day, week or month in a time zone", FILTER_PARAMS | SERIES_PARAMS, _timeseries
        ),
    )
}

OTHER_PAGES: dict[str, tuple[str, frozenset[str]]] = {
    "/stats/export": ("every call as CSV or JSON lines, streamed", EXPORT_PARAMS),
    "/metrics": ("Prometheus text format: the all-time counters and this process's histograms", frozenset()),
    "/dashboard": ("the dashboard", frozenset()),
    "/healthz": ("is the proxy up, can it read the database", frozenset()),
}


def index() -> dict[str, Any]:
    """``/stats``: every page, what it shows and the parameters it takes."""
    return {
        "endpoints": [e.path for e in ENDPOINTS.values()] + list(OTHER_PAGES),
        "pages": [{"path": e.path, "about": e.about, "params": sorted(e.params)} for e in ENDPOINTS.values()]
        + [{"path": path, "about": about, "params": sorted(params)} for path, (about, params) in OTHER_PAGES.items()],
    }
