"""The user's traffic never breaks: a broken database, mitmweb, reloads."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

from tests.support.harness import MITMWEB, Proxy, providers_file
from tests.support.mock_upstream import MockUpstream


def test_database_failure_is_loud_but_traffic_flows(upstream: MockUpstream, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    try:
        httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
        proxy.rows_after(0, 1)
        conn = sqlite3.connect(proxy.db_path)
        conn.execute("drop table requests")  # the database breaks under the running proxy
        conn.commit()
        conn.close()
        for stream in (False, True):
            response = httpx.post(
                f"{proxy.url}/openai/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [], "stream": stream},
            )
            assert response.status_code == 200 and b"Hello" in response.content
        deadline = time.monotonic() + 10
        while "could not write" not in proxy.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "could not write" in proxy.output() and "traffic is unaffected" in proxy.output()
        began = time.monotonic()
        assert proxy.stop() == 0  # quitting is not held up by the failing database
        assert time.monotonic() - began < 10
        assert "not written" in proxy.log_path.read_text()  # and says what it could not write
    finally:
        proxy.stop()


def test_quit_flushes_pending_rows(upstream: MockUpstream, tmp_path: Path) -> None:
    """Rows still queued for the writer when the proxy is told to stop are written."""
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="k")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: client.chat.completions.create(model="gpt-4o-mini", messages=[]), range(40)))
    assert proxy.stop() == 0  # at once: the writer gathers rows for 50 ms before each write
    rows = sqlite3.connect(proxy.db_path).execute("select count(*) from requests").fetchone()
    assert rows == (40,)


def test_mitmweb_works_the_same(upstream: MockUpstream, tmp_path: Path) -> None:
    proxy = Proxy(
        tmp_path,
        ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}", "--set", "web_password=pw"],
        program=MITMWEB,
    )
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="k")
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
        list(client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
        rows = proxy.rows_after(0, 2)
        assert [r["streaming"] for r in rows] == [0, 1]
        assert all(r["input_tokens"] == 53 and r["cost_usd"] for r in rows)
        # Each flow's comment in mitmweb's own flow list is the call's line.
        deadline, comments = time.monotonic() + 10, []
        while time.monotonic() < deadline:
            flows = httpx.get(f"http://127.0.0.1:{proxy.web_port}/flows", headers={"Authorization": "Bearer pw"})
            comments = [f["comment"] for f in flows.json()]
            if len(comments) == 2 and all(comments):
                break
            time.sleep(0.1)
        assert [c.split("  ")[:2] for c in comments] == [["openai", "gpt-4o-mini-2024-07-18"]] * 2
        assert "in 53 out 6" in comments[0]
    finally:
        proxy.stop()
