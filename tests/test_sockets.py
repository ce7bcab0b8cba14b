"""WebSocket calls inside mitmproxy's test context: the hooks as mitmproxy calls them for a
socket (``request``, ``responseheaders``, ``response`` for the 101, ``websocket_message``
per message, ``websocket_end``), rows read back from the writer's database."""

from __future__ import annotations

import io
import json
import sqlite3
from typing import Any

from mitmproxy import http, websocket
from mitmproxy import io as mitmio

from llm_usage.proxy.addon import LlmUsage
from tests.support.flows import twebsocketflow_reverse
from tests.test_addon import request_hook, rows

Addon = tuple[LlmUsage, Any]


CODEX = {
    "user-agent": "codex_exec/0.171.0 (Debian 12.0.0; x86_64) dumb (codex_exec; 0.171.0)",
    "originator": "codex_exec",
}


def open_socket(
    proxy: LlmUsage, tctx: Any, path: str = "/openai/v1/responses", headers: dict[str, str] = CODEX
) -> http.HTTPFlow:
    flow = twebsocketflow_reverse(messages=False)
    flow.request.path = path
    flow.request.headers.update(headers)
    upgrade = flow.response
    flow.response = None
    request_hook(proxy, tctx, flow)
    flow.response = upgrade
    proxy.responseheaders(flow)
    proxy.response(flow)
    return flow


def send(proxy: LlmUsage, flow: http.HTTPFlow, from_client: bool, event: dict[str, Any], at: float) -> None:
    content = json.dumps(event).encode()
    flow.websocket.messages.append(websocket.WebSocketMessage(1, from_client, content, timestamp=at))  # type: ignore[union-attr]
    proxy.websocket_message(flow)


def answer(model: str, tokens: int, lane: str | None = None) -> list[dict[str, Any]]:
    extra = {"stream_id": lane} if lane else {}
    usage = {"input_tokens": tokens, "output_tokens": 10, "total_tokens": tokens + 10}
    response = {"model": model, "status": "completed", "usage": usage}
    return [
        {"type": "response.created", "response": {**response, "usage": None}, **extra},
        {"type": "response.output_text.delta", "delta": "hi", **extra},
        {"type": "response.completed", "response": response, **extra},
    ]


def test_two_lanes_interleaved_are_two_calls(addon: Addon) -> None:
    proxy, tctx = addon
    flow = open_socket(proxy, tctx)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5", "stream_id": "a"}, 100.0)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5-mini", "stream_id": "b"}, 100.5)
    a, b = answer("gpt-5", 1000, "a"), answer("gpt-5-mini", 2000, "b")
    for i, (ea, eb) in enumerate(zip(a, b, strict=True)):
        send(proxy, flow, False, eb, 101.0 + i)
        send(proxy, flow, False, ea, 101.5 + i)
    proxy.websocket_end(flow)
    got = rows(proxy, "model, input_tokens, ttft_ms, duration_ms, transport, usage_status, client")
    assert got == [
        ("gpt-5-mini", 2000, 500.0, 2500.0, "websocket", "complete", "Codex CLI"),  # lane b finished first
        ("gpt-5", 1000, 1500.0, 3500.0, "websocket", "complete", "Codex CLI"),
    ]


def test_calls_in_turn_and_one_cut_short(addon: Addon) -> None:
    proxy, tctx = addon
    flow = open_socket(proxy, tctx)
    for turn, tokens in enumerate((10, 20)):
        send(proxy, flow, True, {"type": "response.create", "model": "gpt-5"}, 100.0 + 10 * turn)
        for event in answer("gpt-5", tokens):
            send(proxy, flow, False, event, 101.0 + 10 * turn)
    send(proxy, flow, True, {"type": "response.steer", "input": []}, 125.0)  # no new call
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5"}, 130.0)
    send(proxy, flow, False, answer("gpt-5", 30)[0], 131.0)
    proxy.websocket_end(flow)
    assert rows(proxy, "input_tokens, usage_status, error IS NOT NULL") == [
        (10, "complete", 0),
        (20, "complete", 0),
        (None, "partial", 1),
    ]
    # mitmweb shows one line per call on the socket's flow, and the flow still saves
    lines = flow.comment.splitlines()
    assert len(lines) == 3 and all("via WebSocket" in line for line in lines)
    buffer = io.BytesIO()
    mitmio.FlowWriter(buffer).add(flow)
    buffer.seek(0)
    [loaded] = mitmio.FlowReader(buffer).stream()
    assert loaded.comment == flow.comment
    assert len(loaded.websocket.messages) == len(flow.websocket.messages)  # type: ignore[union-attr]


def test_a_socket_no_parser_reads_is_one_call(addon: Addon) -> None:
    proxy, tctx = addon
    flow = open_socket(proxy, tctx, "/openai/v1/realtime")
    send(proxy, flow, True, {"type": "response.create"}, 1.0)
    send(proxy, flow, False, {"type": "response.done"}, 2.0)
    proxy.websocket_end(flow)
    assert rows(proxy, "endpoint, transport, usage_status, status_code") == [
        ("/v1/realtime", "websocket", "missing", 101)
    ]


def test_a_refused_upgrade_is_an_http_call(addon: Addon) -> None:
    proxy, tctx = addon
    flow = twebsocketflow_reverse(messages=False)
    flow.request.path = "/openai/v1/responses"
    flow.websocket = None
    refused = flow.response
    flow.response = None
    request_hook(proxy, tctx, flow)
    flow.response = refused
    flow.response.status_code = 401  # type: ignore[union-attr]
    proxy.response(flow)
    # the calls it was opened for failed: an error, not traffic that owes nothing
    got = rows(proxy, "method, status_code, transport, usage_status, error")
    assert got == [("GET", 401, "http", None, "HTTP 401")]


def test_stopping_the_proxy_ends_a_response_in_flight(addon: Addon) -> None:
    proxy, tctx = addon
    flow = open_socket(proxy, tctx)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5"}, 100.0)
    send(proxy, flow, False, answer("gpt-5", 10)[0], 101.0)
    writer = proxy.settings.writer
    proxy.done()  # mitmproxy is shutting down with the socket still open
    assert writer is not None
    got = sqlite3.connect(writer.path).execute("select model, usage_status from requests").fetchall()
    assert got == [("gpt-5", "partial")]


def test_steering_and_stray_errors_keep_every_response(addon: Addon) -> None:
    """A steer that ends a response with ``response.incomplete`` starts a successor the
    client never asked for by ``response.create``: billed, so a row. A failed steer or an
    error about another client event does not end the response under way."""
    proxy, tctx = addon
    flow = open_socket(proxy, tctx)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5"}, 100.0)
    first = answer("gpt-5", 100)
    send(proxy, flow, False, first[0], 101.0)
    send(proxy, flow, True, {"type": "response.steer", "input": []}, 101.5)
    send(proxy, flow, False, {"type": "response.steer.failed", "error": {"message": "steering not supported"}}, 101.6)
    send(proxy, flow, False, {"type": "error", "error": {"message": "Unknown event type response.cancel"}}, 101.7)
    incomplete = {**first[-1], "type": "response.incomplete"}
    send(proxy, flow, False, incomplete, 102.0)
    for i, event in enumerate(answer("gpt-5", 5000)):  # the successor
        send(proxy, flow, False, event, 103.0 + i)
    proxy.websocket_end(flow)
    assert rows(proxy, "input_tokens, usage_status, error, ttft_ms, duration_ms") == [
        (100, "complete", None, 1000.0, 2000.0),
        (5000, "complete", None, 0.0, 2000.0),
    ]


def test_events_go_to_the_lane_they_name(addon: Addon) -> None:
    proxy, tctx = addon
    flow = open_socket(proxy, tctx)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5", "stream_id": "a"}, 100.0)
    send(proxy, flow, True, {"type": "response.create", "model": "gpt-5-mini", "stream_id": "b"}, 100.0)
    refused = {"type": "error", "stream_id": "b", "error": {"message": "model not found"}}
    send(proxy, flow, False, refused, 101.0)  # b is refused before it starts
    for i, event in enumerate(answer("gpt-5", 4000, "a")):
        send(proxy, flow, False, event, 102.0 + i)
    proxy.websocket_end(flow)
    assert rows(proxy, "model, input_tokens, error") == [("gpt-5-mini", None, "model not found"), ("gpt-5", 4000, None)]
    assert proxy.capture._sockets == {}
