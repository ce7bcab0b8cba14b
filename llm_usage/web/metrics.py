"""``/metrics``: the Prometheus text format (https://prometheus.io/docs/instrumenting/exposition_formats/),
with the official ``prometheus-client``.

Counters are the database's own all-time sums (the rollup, with the past kept between
scrapes: ``past_cache.py``), so a restart never resets them and every row ever written
counts, whichever process wrote it. Names follow Prometheus' conventions: ``llm_usage_``,
base units, ``_total`` for counters, ``_seconds`` for durations. Labels are provider,
model, client and project -- never a session or key id -- and bounded: past
``MAX_SERIES`` label sets (a client can name any model it likes), the cheapest ones are
summed under ``model="other"``. The histograms of duration and time to first token are
this process's own since it started (Prometheus' ``rate()`` handles the restart).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .params import Filters
from .past_cache import database_state
from .queries import aggregate

LABELS = ("provider", "model", "client", "project")
MAX_SERIES = 200
TOKEN_SUMS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
    "reasoning": "reasoning_tokens",
}
BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)


class CallHistograms:
    """Duration and time to first token of the calls this process saw (the writer thread notes them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "llm_usage_request_duration_seconds", "From the request to the end of the response, per call.",
            ["provider"], buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.first_token = Histogram(
            "llm_usage_time_to_first_token_seconds", "From the request to the first byte of a streamed response.",
            ["provider"], buckets=FIRST_TOKEN_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def note(self, row: dict[str, Any]) -> None:
        provider = str(row.get("provider") or "")
        if row.get("duration_ms") is not None and row.get("usage_status") != "none":
            self.duration.labels(provider).observe(row["duration_ms"] / 1000)
        if row.get("ttft_ms") is not None:
            self.first_token.labels(provider).observe(row["ttft_ms"] / 1000)


class _Totals(Collector):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def collect(self) -> Iterator[CounterMetricFamily]:
        names = ["requests", "error_requests", "cost_usd", *TOKEN_SUMS.values()]
        rows = aggregate(self.conn, Filters(), [(None, None)], LABELS, only=names)
        series = sorted(rows.items(), key=lambda item: -(item[1].get("cost_usd") or 0))
        kept: dict[tuple[str, ...], dict[str, float]] = {}
        for key, sums in series:
            labels = tuple("" if v is None else str(v) for v in key[1:])
            if len(kept) >= MAX_SERIES and labels not in kept:
                labels = (labels[0], "other", labels[2], labels[3])
            target = kept.setdefault(labels, dict.fromkeys(names, 0.0))
            for name in names:
                target[name] += sums.get(name) or 0
        requests = CounterMetricFamily("llm_usage_requests", "Calls logged, all time.", labels=LABELS)
        errors = CounterMetricFamily("llm_usage_request_errors", "Calls that failed, all time.", labels=LABELS)
        tokens = CounterMetricFamily("llm_usage_tokens", "Tokens billed, by type, all time.", labels=[*LABELS, "type"])
        cost = CounterMetricFamily("llm_usage_cost_usd", "What the priced calls cost, in USD, all time.", labels=LABELS)
        for labels, sums in kept.items():
            requests.add_metric(labels, sums["requests"])
            errors.add_metric(labels, sums["error_requests"])
            cost.add_metric(labels, sums["cost_usd"])
            for kind, name in TOKEN_SUMS.items():
                tokens.add_metric([*labels, kind], sums[name])
        yield from (requests, errors, tokens, cost)


class _Kept:
    """The counters' text while the rows are as they were: prometheus-client formats some
    3,500 series of a busy database in ~100 ms, and Prometheus asks every few seconds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entry: tuple[tuple[Any, ...], bytes] | None = None

    def counters(self, conn: sqlite3.Connection) -> bytes:
        state = database_state(conn)
        with self.lock:
            if self.entry is not None and self.entry[0] == state:
                return self.entry[1]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Totals(conn))
        text = generate_latest(registry)
        with self.lock:
            self.entry = (state, text)
        return text


KEPT = _Kept()


def render(conn: sqlite3.Connection, histograms: CallHistograms) -> bytes:
    """The exposition text: the database's counters, then this process's histograms."""
    return KEPT.counters(conn) + generate_latest(histograms.registry)
