"""Sessions, projects and keys through a real mitmdump, with the real SDKs sending the
coding agents' own header shapes; and what must never happen: a project prefix reaching
another host or path, a key or its head in the database, the log or the stats."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import anthropic
import httpx
import openai

from tests.support.harness import ROOT, Proxy
from tests.support.mock_upstream import MockUpstream

KEY = "sk-proj-attribution-0123456789abcdef"
CHAT = [{"role": "user", "content": "hi"}]


def test_sessions_and_subagents_from_the_agents_headers(proxy: Proxy, new_rows) -> None:
    claude = {"X-Claude-Code-Session-Id": "5d2962ec-09a0-46e5-ac68", "x-claude-code-agent-id": "agent-7",
              "x-claude-code-agent-type": "Explore"}  # fmt: skip
    anthropic.Anthropic(
        base_url=f"{proxy.url}/anthropic", api_key="sk-ant-api03-x", default_headers=claude
    ).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=CHAT)
    codex = {"session-id": "019a22d2-root", "thread-id": "child", "x-openai-subagent": "review"}
    openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, default_headers=codex).chat.completions.create(
        model="gpt-4o-mini", messages=CHAT
    )
    opencode = {"x-session-affinity": "ses_child", "X-Session-Id": "ses_child", "x-parent-session-id": "ses_parent"}
    openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, default_headers=opencode).chat.completions.create(
        model="gpt-4o-mini", messages=CHAT
    )
    rows = sorted(new_rows(3), key=lambda r: r["id"])
    assert [(r["session_id"], r["subagent"]) for r in rows] == [
        ("5d2962ec-09a0-46e5-ac68", "Explore"),
        ("019a22d2-root", "review"),
        ("ses_parent", "ses_child"),
    ]
    sessions = httpx.get(f"{proxy.url}/stats/by-session", params={"session": "019a22d2-root"}).json()["sessions"]
    assert [(s["session_id"], s["requests"], s["subagent_requests"], s["client"]) for s in sessions] == [
        ("019a22d2-root", 1, 1, "OpenAI Python SDK")
    ]


def test_projects_by_header_and_by_prefix_are_never_forwarded(proxy: Proxy, upstream: MockUpstream, new_rows) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/@webshop/openai/v1", api_key=KEY)
    client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    sent = upstream.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and "webshop" not in str(sent)
    headed = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY,
                           default_headers={"X-LLM-Usage-Project": "blog"})  # fmt: skip
    headed.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
    sent = upstream.requests[-1]
    assert "x-llm-usage-project" not in sent["headers"] and "blog" not in str(sent["headers"])
    assert [r["project"] for r in sorted(new_rows(2), key=lambda r: r["id"])] == ["webshop", "blog"]

    before = len(upstream.requests)
    # (dot segments are resolved by the client before sending: parse_route refuses them, test_attribution)
    for target in ("/@web%2Fshop/openai/v1/chat/completions", "/@webshop//evil.example/v1/chat/completions",
                   "/@evil.example:443/openai/v1/models", "/@/openai/v1"):  # fmt: skip
        response = httpx.post(f"{proxy.url}{target}", json={"model": "gpt-4o-mini", "messages": CHAT})
        assert response.status_code == 400, (target, response.text)
    refused = httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={}, headers={"X-LLM-Usage-Project": "a b"})
    assert refused.status_code == 400 and "a project name is 1 to 64" in refused.json()["error"]
    assert len(upstream.requests) == before  # none of them went anywhere


def test_a_key_is_kept_only_as_its_fingerprint(proxy: Proxy, new_rows) -> None:
    openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY).chat.completions.create(
        model="gpt-4o-mini", messages=CHAT
    )
    httpx.post(f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaAttribution123456",
               json={"contents": [{"parts": [{"text": "hi"}]}]})  # fmt: skip
    httpx.post(f"{proxy.url}/ollama/api/chat", json={"model": "llama3.2", "messages": CHAT, "stream": False})
    openai_row, gemini_row, ollama_row = sorted(new_rows(3), key=lambda r: r["id"])
    printed = subprocess.run(
        [sys.executable, "-m", "llm_usage", "--db", str(proxy.db_path), "key-id"],
        input=KEY, capture_output=True, text=True, cwd=ROOT, env={**os.environ}, check=True,
    ).stdout.strip()  # fmt: skip
    assert openai_row["key_id"] == printed and printed.startswith("key-") and len(printed) == 12
    assert gemini_row["key_id"] not in (None, printed)  # ?key= counts too
    assert ollama_row["key_id"] is None  # no credential
    # the key, or any 8 characters of it, nowhere: not in any table, the log, the stats
    pieces = {KEY[i : i + 8] for i in range(len(KEY) - 7)} | {"AIzaAttribution"}
    conn = sqlite3.connect(proxy.db_path)
    tables = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    dump = "\n".join(str(row) for table in tables for row in conn.execute(f"SELECT * FROM [{table}]"))
    conn.close()
    pages = "".join(httpx.get(f"{proxy.url}{path}").text for path in
                    ("/stats/requests?limit=500", "/stats/by-key", "/stats/by-session", "/dashboard"))  # fmt: skip
    for where, text in (("database", dump), ("log", proxy.output()), ("stats", pages)):
        assert not any(piece in text for piece in pieces), where
