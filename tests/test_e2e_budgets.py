"""Budgets through a real mitmdump: the real SDKs get a 429 they understand, with our
message; the spend survives a restart; alerts reach a local webhook; a webhook that hangs
or refuses never slows traffic; calls in flight at the limit are the only overshoot."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors

from llm_usage.store.schema import open_database
from tests.support.harness import Proxy, free_port, providers_file
from tests.support.mock_upstream import MockUpstream

KEY = "sk-test-budgets-0123456789"
CHAT = [{"role": "user", "content": "hi"}]


class Webhook:
    """A local receiver: records each POST's JSON; ``delay`` makes it hang first."""

    def __init__(self, delay: float = 0.0) -> None:
        received: list[dict[str, object]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                time.sleep(delay)
                received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def _seed(path: Path, spent: dict[str, float]) -> None:
    """Spend already in the database this period (a restart mid-period)."""
    db = open_database(str(path))
    now = datetime.now(UTC).timestamp()
    db.table("requests").insert_all(
        {"timestamp": now - 60, "provider": provider, "model": "m", "endpoint": "/x", "method": "POST",
         "input_tokens": 1, "output_tokens": 1, "cost_usd": cost, "status_code": 200, "usage_status": "complete"}
        for provider, cost in spent.items()
    )  # fmt: skip
    db.close()


def _start(tmp_path: Path, upstream: MockUpstream, budgets: str) -> Proxy:
    path = tmp_path / "budgets.yaml"
    path.write_text(budgets)
    providers = providers_file(tmp_path, upstream.url)
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers}", "--set", f"llm_usage_budgets={path}"])
    httpx.get(f"{proxy.url}/healthz", timeout=30)
    return proxy


def test_each_sdk_gets_a_429_it_understands_and_the_spend_survives_a_restart(
    tmp_path: Path, upstream: MockUpstream, webhook: Webhook
) -> None:
    _seed(tmp_path / "usage.db", {"openai": 2.0, "anthropic": 2.0, "gemini": 2.0, "ollama": 2.0})
    budgets = (
        f"""
timezone: Europe/Berlin
webhook: {webhook.url}
budgets:
"""
        + "".join(
            f"  - {{name: {p}-daily, period: day, limit_usd: 1.5, scope: {{provider: {p}}}, action: block}}\n"
            for p in ("openai", "anthropic", "gemini", "ollama")
        )
        + "  - {name: everything, period: month, limit_usd: 100, alert_at: [0.05]}\n"
    )
    proxy = _start(tmp_path, upstream, budgets)
    before = len(upstream.requests)
    try:
        with pytest.raises(openai.RateLimitError) as refused_openai:
            openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY).chat.completions.create(
                model="gpt-4o-mini", messages=CHAT
            )
        assert "budget 'openai-daily' is used up: $2.00 of $1.50 this day" in str(refused_openai.value)
        with pytest.raises(anthropic.RateLimitError) as refused_anthropic:
            anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", api_key="sk-ant-api03-x").messages.create(
                model="claude-sonnet-4-5", max_tokens=10, messages=CHAT
            )
        assert "budget 'anthropic-daily' is used up" in str(refused_anthropic.value)
        gemini = genai.Client(api_key="AIza-test", http_options={"base_url": f"{proxy.url}/gemini"})
        with pytest.raises(genai_errors.ClientError) as refused_gemini:
            gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert refused_gemini.value.code == 429 and "budget 'gemini-daily' is used up" in str(refused_gemini.value)
        with pytest.raises(ollama.ResponseError) as refused_ollama:
            ollama.Client(host=f"{proxy.url}/ollama").chat(model="llama3.2", messages=CHAT)
        assert refused_ollama.value.status_code == 429 and "budget 'ollama-daily'" in refused_ollama.value.error
        assert len(upstream.requests) == before  # none forwarded (and no SDK retried: x-should-retry)
        rows = proxy.rows_after(4, 4)
        assert {r["provider"] for r in rows} == {"openai", "anthropic", "gemini", "ollama"}
        assert all(r["status_code"] == 429 and "is used up" in r["error"] for r in rows)
        state = httpx.get(f"{proxy.url}/stats/budgets").json()
        blocking = {b["name"]: b for b in state["budgets"]}
        assert blocking["openai-daily"]["state"] == "blocking" and blocking["openai-daily"]["spent_usd"] == 2.0
        assert blocking["everything"]["state"] == "warning" and blocking["everything"]["share"] == 0.08
        # the alerts reached the webhook, once each: at start, from the database's spend
        deadline = time.monotonic() + 10
        while len(webhook.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        texts = sorted(str(body["text"]) for body in webhook.received)
        assert len(texts) == 5 and all(text.startswith("llm-usage budget ") for text in texts)
        assert any("'everything' passed 5% of its limit" in text for text in texts)
        assert proxy.printed("budget 'openai-daily' reached its limit")
    finally:
        proxy.stop()
    again = _start(tmp_path, upstream, budgets)  # a restart: still blocked, no alert again
    try:
        body = {"model": "gpt-4o-mini", "messages": CHAT}
        response = httpx.post(f"{again.url}/openai/v1/chat/completions", json=body)
        assert response.status_code == 429 and response.headers["x-should-retry"] == "false"
        assert 0 < int(response.headers["retry-after"]) <= 25 * 3600
        time.sleep(0.5)
        assert len(webhook.received) == 5
    finally:
        again.stop()


def test_calls_in_flight_at_the_limit_are_the_only_overshoot(tmp_path: Path, upstream: MockUpstream) -> None:
    """Spend is known when a call ends: calls that started before the limit was reached all
    pass (the README says so), and every call after is refused."""
    one_call = (53 * 0.15 + 6 * 0.60) / 1e6  # gpt-4o-mini on the mock: 53 in, 6 out
    budgets = f"budgets:\n  - {{name: tight, period: day, limit_usd: {one_call * 2.5:.12f}, action: block}}\n"
    proxy = _start(tmp_path, upstream, budgets)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, max_retries=0,
                               default_headers={"X-Mock-Pace-Ms": "200"})  # fmt: skip

        def slow(_: int) -> str:
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, stream=True)
            return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        with ThreadPoolExecutor(6) as pool:  # six at once, all started before any has a price
            answers = list(pool.map(slow, range(6)))
        assert all(answers)
        proxy.rows_after(0, 6)
        time.sleep(0.5)  # the writer adds their cost as it builds their rows
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        [state] = httpx.get(f"{proxy.url}/stats/budgets").json()["budgets"]
        assert state["spent_usd"] == pytest.approx(6 * one_call) and state["state"] == "blocking"
    finally:
        proxy.stop()


@pytest.mark.parametrize("trouble", ["hangs", "refuses"])
def test_a_webhook_that_hangs_or_refuses_never_slows_traffic(
    tmp_path: Path, upstream: MockUpstream, trouble: str
) -> None:
    hook = Webhook(delay=30) if trouble == "hangs" else None
    if hook is not None:
        url = hook.url
    else:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    budgets = f"webhook: {url}\nbudgets:\n  - {{name: any, period: hour, limit_usd: 0.000001, alert_at: [1.0]}}\n"
    proxy = _start(tmp_path, upstream, budgets)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # crosses the limit: an alert
        proxy.rows_after(0, 1)
        began = time.monotonic()
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        assert time.monotonic() - began < 3  # the webhook's trouble is its own thread's
        if trouble == "refuses":
            assert proxy.printed("the budget webhook failed 3 times", timeout=20)
    finally:
        proxy.stop()
        if hook is not None:
            hook.close()
    assert free_port()  # (the harness is still usable)


def test_rate_limit_headroom_per_provider_and_key(proxy: Proxy, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", api_key="sk-ant-api03-limits").messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=CHAT
    )
    limited = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, max_retries=0,
                            default_headers={"X-Mock-Status": "429"})  # fmt: skip
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    rows = sorted(new_rows(3), key=lambda r: r["id"])
    key_id = rows[0]["key_id"]
    response = httpx.get(f"{proxy.url}/stats/limits", params={"key": key_id})
    assert response.status_code == 200, response.text
    limits = response.json()
    [latest] = limits["limits"]
    assert latest["provider"] == "openai" and latest["key_id"] == key_id
    windows = {w["name"]: w for w in latest["windows"]}
    assert windows["tokens"]["limit"] == 200000 and windows["tokens"]["used_share"] == 0.25
    assert latest["retry_after_until"] is not None  # the 429's retry-after
    assert limits["upstream_429s"] == [
        {"provider": "openai", "key_id": key_id, "upstream_429s": 1, "last": limits["upstream_429s"][0]["last"]}
    ]
    everything = httpx.get(f"{proxy.url}/stats/limits").json()
    assert any(e["provider"] == "anthropic" and any(w["name"] == "input-tokens" for w in e["windows"])
               for e in everything["limits"])  # fmt: skip
    assert "req_" not in json.dumps(everything)  # numbers and times only


def test_the_dashboard_shows_the_rate_limits(proxy: Proxy) -> None:
    from tests.test_dashboard_browser import ARGS, CHROMIUM, sync_api, wait_loads

    openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY).chat.completions.create(
        model="gpt-4o-mini", messages=CHAT
    )
    proxy.rows_after(0, 1)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page()
        page.goto(f"{proxy.url}/dashboard")
        wait_loads(page, 0)
        assert page.is_visible("#limits-panel")
        cells = page.eval_on_selector_all("#limits tbody tr", "rows => rows.map(r => r.textContent)")
        assert any("openai" in c and "tokens" in c and "25%" in c for c in cells), cells
        browser.close()


def test_a_used_up_budget_refuses_the_next_call_on_an_open_websocket(tmp_path: Path, upstream: MockUpstream) -> None:
    """Codex keeps one socket open for a session: a budget used up while it is open refuses
    the next ``response.create`` on it with the API's own ``error`` event."""
    from tests.test_e2e_websocket import turn

    proxy = _start(tmp_path, upstream, "budgets:\n  - {name: ws, period: day, limit_usd: 0.000000001, action: block}\n")
    before = len(upstream.requests)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY)
        with client.beta.responses.connect() as ws:
            first = turn(ws, model="gpt-5", input="hi")
            assert first[-1].type == "response.completed"  # type: ignore[attr-defined]
            proxy.rows_after(0, 1)
            time.sleep(0.5)  # its cost is added as its row is built
            second = turn(ws, model="gpt-5", input="again")
        error = second[-1]
        assert error.type == "error" and "budget 'ws' is used up" in error.error.message  # type: ignore[attr-defined]
        frames = [f["type"] for f in upstream.requests[before]["frames"]]
        assert frames == ["response.create"]  # the second never reached the provider
        rows = proxy.rows_after(1, 1)
        assert rows[0]["transport"] == "websocket" and "is used up" in rows[0]["error"]
    finally:
        proxy.stop()


def test_metrics_in_the_prometheus_format_from_the_databases_totals(tmp_path: Path, upstream: MockUpstream) -> None:
    """Counters are the database's all-time sums (a restart does not reset them); the
    token guards /metrics as it guards the stats; no session or key id is a label."""
    from prometheus_client.parser import text_string_to_metric_families

    _seed(tmp_path / "usage.db", {"openai": 1.5, "anthropic": 0.25})
    providers = providers_file(tmp_path, upstream.url)
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers}", "--set", "llm_usage_stats_token=s3cret"])
    try:
        stream = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT, stream=True
        )
        for _ in stream:  # read to the end: closing early races the usage chunk
            pass
        proxy.rows_after(2, 1)
        assert httpx.get(f"{proxy.url}/metrics").status_code == 401
        response = httpx.get(f"{proxy.url}/metrics", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        cost: dict[str, float] = {}
        for sample in families["llm_usage_cost_usd"].samples:
            if sample.name.endswith("_total"):
                cost[sample.labels["provider"]] = cost.get(sample.labels["provider"], 0) + sample.value
        assert cost["openai"] == pytest.approx(1.5 + (53 * 0.15 + 6 * 0.60) / 1e6) and cost["anthropic"] == 0.25
        requests = sum(s.value for s in families["llm_usage_requests"].samples if s.name.endswith("_total"))
        assert requests == 3
        tokens = {s.labels["type"] for s in families["llm_usage_tokens"].samples}
        assert tokens == {"input", "output", "cache_read", "cache_write", "reasoning"}
        assert any(s.name == "llm_usage_time_to_first_token_seconds_count" and s.value == 1
                   for s in families["llm_usage_time_to_first_token_seconds"].samples)  # fmt: skip
        assert "session" not in response.text and "key_id" not in response.text
    finally:
        proxy.stop()
