"""The Responses API over a WebSocket (Codex CLI's default transport), through a real
mitmdump, driven by the OpenAI SDK's own WebSocket client (``client.beta.responses.connect``).

One row per ``response.create``, none for the connection; a socket cut mid-response gives a
partial row; recorded Responses streams replayed as socket messages give their exact tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from websockets.sync.client import connect

from tests.support.fixture_cases import SHARED_CASES, TOKEN_FIELDS
from tests.support.harness import Proxy
from tests.support.mock_upstream import MockUpstream

KEY = "sk-test-ws-0123456789"


def sdk(proxy: Proxy, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, default_headers=headers)


def turn(connection, **create) -> list[object]:  # type: ignore[no-untyped-def]
    connection.response.create(**create)
    events = []
    for event in connection:
        events.append(event)
        if event.type in ("response.completed", "response.failed", "response.incomplete", "error"):
            return events
    raise AssertionError("the socket closed before the response ended")


@pytest.mark.parametrize("compression", [None, "deflate"], ids=["plain", "permessage-deflate"])
def test_each_response_create_is_a_call(
    proxy: Proxy, upstream: MockUpstream, new_rows, compression: str | None
) -> None:
    options = {"compression": compression}
    codex = {"session-id": "019a22d2-ws", "x-openai-subagent": "review"}  # Codex's, on the handshake
    with sdk(proxy, **{"X-Mock-Pace-Ms": "20", **codex}).beta.responses.connect(
        websocket_connection_options=options
    ) as ws:
        first = turn(ws, model="gpt-5", input="hi")
        second = turn(ws, model="gpt-5-mini", input="again", previous_response_id="resp_mock")
    assert [e.type for e in first][-1] == "response.completed"  # type: ignore[attr-defined]
    assert "".join(e.delta for e in second if e.type == "response.output_text.delta")  # type: ignore[attr-defined]
    rows = new_rows(2)
    assert [r["model"] for r in rows] == ["gpt-5-2025-08-07", "gpt-5-mini-2025-08-07"]
    for row in rows:
        assert row["transport"] == "websocket" and row["streaming"] == 1
        assert row["method"] == "GET" and row["endpoint"] == "/v1/responses" and row["status_code"] == 101
        assert (row["input_tokens"], row["output_tokens"]) == (1200, 70)
        assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (1024, 64)
        assert row["usage_status"] == "complete" and row["error"] is None
        assert row["cost_usd"] is not None and row["cost_usd"] > 0
        assert row["client"] == "OpenAI Python SDK"
        assert (row["session_id"], row["subagent"]) == ("019a22d2-ws", "review") and row["key_id"].startswith("key-")
        # ttft: from the response.create message to the first event; the deltas are paced
        assert 0 <= row["ttft_ms"] < row["duration_ms"] and row["duration_ms"] >= 6 * 20 * 0.8
    handshake = upstream.requests[-1]
    offered = handshake["headers"].get("sec-websocket-extensions", "")
    assert ("permessage-deflate" in offered) == (compression == "deflate")
    assert [f["type"] for f in handshake["frames"]] == ["response.create", "response.create"]
    assert handshake["headers"]["authorization"] == f"Bearer {KEY}"
    # No further row: the connection itself is not a call.
    assert proxy.query("SELECT count(*) AS n FROM requests WHERE id > :id", {"id": rows[-1]["id"]})[0]["n"] == 0
    assert proxy.printed("via WebSocket")


def test_a_socket_cut_mid_response_is_partial(proxy: Proxy, new_rows) -> None:
    url = proxy.url.replace("http://", "ws://") + "/openai/v1/responses"
    headers = {"Authorization": f"Bearer {KEY}", "X-Mock-Cut-After": "3"}
    with connect(url, additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "response.create", "model": "gpt-5", "input": "hi"}))
        received = []
        try:
            while True:
                received.append(json.loads(ws.recv(timeout=10)))
        except Exception:  # noqa: BLE001 - the upstream drops the socket
            pass
    assert [e["type"] for e in received][:1] == ["response.created"] and len(received) == 3
    [row] = new_rows(1)
    assert row["usage_status"] == "partial" and row["transport"] == "websocket"
    assert row["model"] == "gpt-5-2025-08-07" and row["input_tokens"] is None
    assert "WebSocket closed before the response completed" in row["error"]


def test_an_error_event_ends_its_call(proxy: Proxy, new_rows) -> None:
    with sdk(proxy, **{"X-Mock-Status": "429"}).beta.responses.connect() as ws:
        assert [e.type for e in turn(ws, model="gpt-5", input="hi")] == ["error"]  # type: ignore[attr-defined]
    [row] = new_rows(1)
    assert row["error"] == "mock: status 429" and row["model"] == "gpt-5"  # the requested model
    assert row["usage_status"] is None and row["cost_usd"] is None


def test_recorded_responses_streams_over_a_socket(proxy: Proxy, new_rows, shared_fixtures: Path) -> None:
    """Every recorded Responses API stream, its events sent as socket messages: the row
    has the same tokens as the same stream over SSE."""
    cases = [c for c in SHARED_CASES if c.streamed and c.path.endswith("/responses") and c.status_code == 200]
    assert len(cases) >= 4
    url = proxy.url.replace("http://", "ws://") + "/fx-openai/v1/responses"
    for case in cases:
        with connect(url, additional_headers={"X-Mock-Fixture": case.name.removesuffix(".json")}) as ws:
            ws.send(json.dumps({"type": "response.create", **case.request_body}))
            while json.loads(ws.recv(timeout=10))["type"] not in ("response.completed", "response.incomplete"):
                pass
    rows = new_rows(len(cases))
    for case, row in zip(cases, rows, strict=True):
        expected = case.expected
        assert {f: row[f] for f in TOKEN_FIELDS} == {f: expected.get(f) for f in TOKEN_FIELDS}, case.id
        assert row["model"] == expected["model"], case.id
