"""Generate a realistic usage database: a year of traffic across providers, models and clients.

    .venv/bin/python bench/gen_db.py [--rows 1000000] [--out bench/out/usage-1m.db] [--seed 7]

Shape of the traffic (deterministic for a given seed):
- a year ending now, growing over the year, busier on weekdays and in working hours
  (Europe/Berlin-ish), in bursts: a session is one client on one model for a while;
- ten providers with their real models; Ollama's local models cost 0; a few models have
  no known price (cost NULL, cost_source NULL);
- about 60% streamed (with ttft), 2% errors (4xx/5xx, some cut off mid-stream with partial
  usage), 1% missing usage, prompt caching on Anthropic/OpenAI/Gemini with cache savings,
  reasoning tokens on reasoning models, some seed-era style rows with NULL client.
Rows are written through ``open_database`` so the schema (and every migration) is the real one.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from llm_usage.store.schema import open_database

# provider -> [(model, weight, input $/M, output $/M or None if unpriced, reasoning?)]
MODELS: dict[str, list[tuple[str, float, float | None, float | None, bool]]] = {
    "anthropic": [
        ("claude-sonnet-4-5-20250929", 40, 3.0, 15.0, False),
        ("claude-opus-4-1-20250805", 6, 15.0, 75.0, False),
        ("claude-haiku-4-5-20251001", 14, 1.0, 5.0, False),
    ],
    "openai": [
        ("gpt-4o-mini", 18, 0.15, 0.6, False),
        ("gpt-4.1", 8, 2.0, 8.0, False),
        ("gpt-5", 10, 1.25, 10.0, True),
        ("o4-mini", 5, 1.1, 4.4, True),
        ("text-embedding-3-small", 6, 0.02, 0.0, False),
    ],
    "gemini": [
        ("gemini-2.5-flash", 12, 0.3, 2.5, True),
        ("gemini-2.5-pro", 5, 1.25, 10.0, True),
    ],
    "openrouter": [
        ("deepseek/deepseek-chat-v3.1", 6, 0.27, 1.1, False),
        ("qwen/qwen3-coder", 4, 0.22, 0.95, False),
        ("mistralai/devstral-medium", 2, None, None, False),
    ],
    "ollama": [
        ("llama3.2:3b", 6, 0.0, 0.0, False),
        ("qwen2.5-coder:14b", 5, 0.0, 0.0, False),
    ],
    "nvidia": [("meta/llama-3.3-70b-instruct", 2, None, None, False)],
    "moonshot": [("kimi-k2-0905-preview", 3, 0.6, 2.5, False)],
    "zai": [("glm-4.6", 3, 0.6, 2.2, False)],
    "minimax": [("MiniMax-M2", 2, 0.3, 1.2, False)],
    "ollama-cloud": [("gpt-oss:120b", 2, None, None, True)],
}
ENDPOINTS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "gemini": "/v1beta/models/{model}:generateContent",
    "openrouter": "/api/v1/chat/completions",
    "ollama": "/api/chat",
    "nvidia": "/v1/chat/completions",
    "moonshot": "/v1/chat/completions",
    "zai": "/api/paas/v4/chat/completions",
    "minimax": "/v1/text/chatcompletion_v2",
    "ollama-cloud": "/api/chat",
}
# client -> (weight, providers it tends to use)
CLIENTS: dict[str | None, tuple[float, tuple[str, ...]]] = {
    "Claude Code": (30, ("anthropic",)),
    "Cline": (14, ("anthropic", "openrouter", "openai", "gemini", "moonshot", "zai", "minimax")),
    "Continue": (8, ("openai", "ollama", "anthropic", "gemini")),
    "Codex CLI": (8, ("openai",)),
    "Aider": (5, ("anthropic", "openai", "openrouter", "gemini")),
    "OpenAI Python SDK": (10, ("openai", "openrouter", "nvidia", "moonshot", "zai")),
    "Anthropic Python SDK": (4, ("anthropic",)),
    "Google GenAI SDK": (5, ("gemini",)),
    "Ollama Python SDK": (4, ("ollama", "ollama-cloud")),
    "curl": (2, tuple(MODELS)),
    "other": (3, tuple(MODELS)),
    None: (2, tuple(MODELS)),
}
COLUMNS = (
    "timestamp, provider, model, endpoint, method, input_tokens, output_tokens, total_tokens, cost_usd, "
    "duration_ms, streaming, status_code, error, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
    "ttft_ms, cost_source, usage_status, client, cache_savings_usd, session_id, subagent, project, key_id"
)
SESSION_CLIENTS = {"Claude Code": ("Explore", "general-purpose"), "Codex CLI": ("review", "compact"), "opencode": ()}
"""The tools that name their sessions, and the subagents they run."""
PROJECTS = ["webshop", "blog", "infra", "data-pipeline", None]
KEYS = ["key-3fa9c1d2", "key-90b1e07f", "key-5c0ffee1", "key-0d15ea5e", None]
ERRORS = (
    (429, "rate_limit_error: Number of request tokens has exceeded your per-minute rate limit"),
    (529, "overloaded_error: Overloaded"),
    (500, "HTTP 500"),
    (400, "invalid_request_error: prompt is too long: 212345 tokens > 200000 maximum"),
    (401, "authentication_error: invalid x-api-key"),
)


def _pick(rng: random.Random, items: list, weights: list[float]):  # type: ignore[no-untyped-def,type-arg]
    return rng.choices(items, weights)[0]


def _timestamps(rng: random.Random, rows: int, end: datetime) -> list[float]:
    """``rows`` instants over the year before ``end``: growth, weekly and daily rhythm, bursts."""
    start = end - timedelta(days=365)
    hours = 365 * 24
    weights = []
    for h in range(hours):
        t = start + timedelta(hours=h)
        local = (t.hour + 1) % 24  # roughly Central European time
        growth = 0.35 + 0.65 * h / hours
        weekday = 1.0 if t.weekday() < 5 else 0.3
        daily = 0.08 + math.exp(-(((local - 14) / 4.5) ** 2)) + 0.25 * math.exp(-(((local - 21) / 2) ** 2))
        weights.append(growth * weekday * daily)
    per_hour = rng.choices(range(hours), weights, k=rows)
    counts = [0] * hours
    for h in per_hour:
        counts[h] += 1
    base = start.timestamp()
    out: list[float] = []
    for h, n in enumerate(counts):
        out.extend(sorted(base + h * 3600 + rng.random() * 3600 for _ in range(n)))
    return out


def generate(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    if path.exists():
        path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    open_database(path).close()
    end = datetime.now(UTC)
    stamps = _timestamps(rng, rows, end)
    clients = list(CLIENTS)
    client_weights = [CLIENTS[c][0] for c in clients]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    placeholders = ", ".join("?" for _ in COLUMNS.split(","))
    sql = f"INSERT INTO requests ({COLUMNS}) VALUES ({placeholders})"
    batch: list[tuple[object, ...]] = []
    session_left = 0
    client: str | None = None
    provider = model = ""
    price_in: float | None = None
    price_out: float | None = None
    reasoning = False
    session: str | None = None
    project: str | None = None
    key_id: str | None = None
    t0 = time.monotonic()
    for i, ts in enumerate(stamps):
        if session_left <= 0:  # a new burst: one tool on one model for a while
            session_left = int(rng.expovariate(1 / 25)) + 1
            client = _pick(rng, clients, client_weights)
            providers = CLIENTS[client][1]
            provider = _pick(rng, list(providers), [sum(m[1] for m in MODELS[p]) for p in providers])
            model, _w, price_in, price_out, reasoning = _pick(rng, MODELS[provider], [m[1] for m in MODELS[provider]])
            session = f"{rng.getrandbits(64):016x}-{i}" if client in SESSION_CLIENTS else None
            project = rng.choice(PROJECTS)
            key_id = None if provider == "ollama" else rng.choice(KEYS[:-1])
        session_left -= 1
        subagents = SESSION_CLIENTS.get(client or "", ())
        subagent = rng.choice(subagents) if subagents and rng.random() < 0.15 else None
        endpoint = ENDPOINTS[provider].format(model=model)
        embedding = "embedding" in model
        if embedding:
            endpoint = "/v1/embeddings"
        streaming = 0 if embedding else int(rng.random() < 0.6)
        input_tokens = int(rng.lognormvariate(8.3, 1.1)) + 20
        output_tokens = 0 if embedding else int(rng.lognormvariate(5.6, 1.0)) + 1
        cache_read = cache_write = reasoning_tokens = None
        if provider in ("anthropic", "openai", "gemini") and not embedding:
            cache_read = int(input_tokens * rng.uniform(0.5, 0.95)) if rng.random() < 0.7 else 0
            if provider == "anthropic":
                cache_write = int((input_tokens - cache_read) * rng.uniform(0, 0.8))
        if reasoning:
            reasoning_tokens = int(output_tokens * rng.uniform(0.2, 0.7))
        status_code, error, usage_status = 200, None, "complete"
        ttft = None
        duration = rng.lognormvariate(7.6, 0.7) if not embedding else rng.uniform(80, 400)
        roll = rng.random()
        if roll < 0.012:  # refused: no usage at all
            status_code, error = rng.choice(ERRORS)
            cache_read = cache_write = reasoning_tokens = None
            usage_status = None
            duration = rng.uniform(50, 900)
        elif roll < 0.02 and streaming:  # cut off mid-stream
            error = "client disconnected"
            output_tokens = output_tokens // 3
            usage_status = "partial"
        elif roll < 0.03:  # the provider sent no usage
            cache_read = cache_write = reasoning_tokens = None
            usage_status = "missing"
        if streaming:
            ttft = duration * rng.uniform(0.05, 0.4)
        tokens_known = usage_status in ("complete", "partial")
        cost = savings = source = None
        if tokens_known and price_in is not None and price_out is not None:
            cached = cache_read or 0
            written = cache_write or 0
            fresh = input_tokens - cached - written
            cost = (fresh + cached * 0.1 + written * 1.25) * price_in / 1e6 + output_tokens * price_out / 1e6
            if cached:
                savings = cached * price_in * 0.9 / 1e6
            source = "genai-prices 0.2.3" if provider not in ("ollama", "zai", "minimax") else "pricing.yaml"
            if provider == "openrouter":
                source = "provider"
        batch.append(
            (
                round(ts, 3),
                provider,
                model,
                endpoint,
                "POST",
                input_tokens if tokens_known else None,
                output_tokens if tokens_known else None,
                input_tokens + output_tokens if tokens_known else None,
                cost,
                round(duration, 3),
                streaming,
                status_code,
                error,
                cache_read,
                cache_write,
                reasoning_tokens,
                round(ttft, 3) if ttft is not None else None,
                source,
                usage_status,
                client,
                savings,
                session,
                subagent,
                project,
                key_id,
            )
        )
        if len(batch) >= 20_000:
            conn.executemany(sql, batch)
            conn.commit()
            batch.clear()
            print(f"\r{i + 1:,} rows", end="", file=sys.stderr, flush=True)
    conn.executemany(sql, batch)
    conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    print(f"\r{rows:,} rows in {time.monotonic() - t0:.1f}s -> {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "usage-1m.db")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    generate(args.out, args.rows, args.seed)


if __name__ == "__main__":
    main()
