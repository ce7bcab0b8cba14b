"""The seed's own ``usage.db``: its table exactly as the seed's design made it
(``timestamp`` REAL Unix seconds), and rows as the seed wrote them.

Tests open such a file with the proxy to show that a seed-era database keeps its history
(``store/schema.py``, m008) and that queries written for the seed's schema stay right.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

SEED_TABLE = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    provider TEXT NOT NULL,
    model TEXT,
    endpoint TEXT,
    method TEXT,
    input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0,
    total_tokens INTEGER DEFAULT 0,
    cost_usd REAL,
    duration_ms REAL,
    streaming INTEGER DEFAULT 0,
    status_code INTEGER,
    error TEXT
);
CREATE INDEX idx_requests_timestamp ON requests (timestamp);
CREATE INDEX idx_requests_provider ON requests (provider);
CREATE INDEX idx_requests_model ON requests (model);
"""
SEED_INSERT = (
    "INSERT INTO requests (timestamp, provider, model, endpoint, method, input_tokens, output_tokens, "
    "total_tokens, cost_usd, duration_ms, streaming, status_code, error) VALUES (:timestamp, :provider, :model, "
    ":endpoint, :method, :input_tokens, :output_tokens, :total_tokens, :cost_usd, :duration_ms, :streaming, "
    ":status_code, :error)"
)
MODELS = {
    "openai": ("/v1/chat/completions", ["gpt-4o-mini", "gpt-4o"]),
    "anthropic": ("/v1/messages", ["claude-sonnet-4-5", "claude-haiku-4-5"]),
    "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent", ["gemini-2.5-flash"]),
    "ollama": ("/api/chat", ["llama3.2"]),
}


def week_of_rows(now: float, count: int = 700, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` calls over the 7 days before ``now`` (Unix seconds), oldest first: some
    streamed, some failed, some unpriced (cost NULL), as the seed logged them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        provider = rng.choice(list(MODELS))
        endpoint, models = MODELS[provider]
        failed = rng.random() < 0.06
        tokens_in, tokens_out = (None, None) if failed else (rng.randrange(10, 9000), rng.randrange(1, 1500))
        cost = None if failed or provider == "ollama" or rng.random() < 0.05 else round(rng.random() / 40, 8)
        rows.append(
            {
                "timestamp": now - rng.random() * 7 * 86400,
                "provider": provider,
                "model": rng.choice(models),
                "endpoint": endpoint,
                "method": "POST",
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "total_tokens": None if failed else tokens_in + tokens_out,  # type: ignore[operator]
                "cost_usd": cost,
                "duration_ms": rng.uniform(200, 9000),
                "streaming": int(rng.random() < 0.6),
                "status_code": rng.choice([429, 500]) if failed else 200,
                "error": "upstream error" if failed else None,
            }
        )
    rows.sort(key=lambda row: row["timestamp"])
    return rows


def make_seed_db(path: Path, rows: list[dict[str, Any]]) -> None:
    """The seed's table at ``path`` with ``rows`` in it, written as the seed wrote them."""
    conn = sqlite3.connect(path)
    conn.executescript(SEED_TABLE)
    conn.executemany(SEED_INSERT, rows)
    conn.commit()
    conn.close()
