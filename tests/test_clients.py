"""The real clients' requests, as captured from them (``tests/fixtures/clients/``, written by
``make clients-check RECORD=1``), replayed through the addon: each is named as the table
says, a pre-connect owes no usage, and Codex's WebSocket turns are one row each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mitmproxy.test import tutils

from llm_usage.parsers import wire_format
from llm_usage.proxy.addon import LlmUsage
from llm_usage.proxy.clients import client_family
from llm_usage.proxy.routing import parse_route
from tests.support.flows import tflow_reverse
from tests.support.harness import OWN_FIXTURES
from tests.test_addon import exchange, rows
from tests.test_sockets import open_socket, send

Addon = tuple[LlmUsage, Any]
CAPTURES = sorted((OWN_FIXTURES / "clients").glob("*.json"))

NAMED = {
    # capture -> the client column of its calls (what the table must say, and why)
    "aider-anthropic": "LiteLLM",  # aider calls Anthropic through LiteLLM, which names itself
    "aider-openai": "OpenAI Python SDK",  # ... and OpenAI through the OpenAI SDK, unmarked
    "claude-anthropic": "Claude Code",
    "claude-anthropic-2.1.197": "Claude Code",  # the version that sent a HEAD pre-connect at start
    "cline-anthropic": "Vercel AI SDK",  # Cline CLI 3 sends only the AI SDK's User-Agent
    "cline-openai": "Vercel AI SDK",
    "cline-openai-responses": "Vercel AI SDK",
    "codex-custom-responses-sse": "Codex CLI",
    "codex-openai": "Codex CLI",
    "codex-openai-toolturn": "Codex CLI",
    "continue-anthropic": "Node.js",  # Continue CLI: a bare node-fetch to Anthropic
    "continue-openai": "OpenAI JS SDK",  # ... and a bundled OpenAI SDK ("ls/JS 5.23.2") to OpenAI
    "llm-openai": "OpenAI Python SDK",
    "opencode-anthropic": "opencode",
    "opencode-openai": "opencode",
    "opencode-openai-responses": "opencode",
}
PRE_CONNECT = "Bun"  # Claude Code's HEAD <base URL> at start names only its runtime


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_capture_has_an_expectation() -> None:
    assert sorted(p.stem for p in CAPTURES) == sorted(NAMED)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_each_client_is_named_from_its_captured_headers(capture: Path) -> None:
    for request in load(capture)["requests"]:
        route = parse_route(request["path"])
        fmt = wire_format("anthropic" if route.slug == "anthropic" else "openai", route.path)
        headers = {name.encode(): value for name, value in request["headers"].items()}
        want = PRE_CONNECT if request["method"] == "HEAD" else NAMED[capture.stem]
        assert client_family(headers, fmt.name) == want, request["headers"].get("user-agent")


def _answer(path: str, model: str) -> dict[str, Any]:
    if path.endswith("/messages"):
        return {"model": model, "usage": {"input_tokens": 10, "output_tokens": 2}}
    if path.endswith("/responses"):
        return {"model": model, "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}}
    return {"model": model, "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_captured_requests_through_the_addon(addon: Addon, capture: Path) -> None:
    """Each captured request as the client sent it (method, path, headers; a small body
    with its model): HTTP calls are rows with the client's name, the pre-connect is a row
    that owes no usage, and a socket's turns are a row per ``response.create``."""
    proxy, tctx = addon
    expected = []
    for request in load(capture)["requests"]:
        headers = {k: v for k, v in request["headers"].items() if k not in ("upgrade", "sec-websocket-extensions")}
        model = request["model"] or "gpt-5"
        if "ws_frames" in request:
            flow = open_socket(proxy, tctx, request["path"], headers)
            at = 1000.0
            for frame in request["ws_frames"]:
                at += 1
                event: dict[str, Any] = {"type": frame["type"]}
                if frame["type"] in ("response.created", "response.completed"):
                    event["response"] = _answer("/responses", frame.get("model", model))
                send(proxy, flow, frame["from_client"], event | {"model": frame.get("model")}, at)
                if frame["type"] == "response.create":
                    expected.append((NAMED[capture.stem], "websocket", "complete"))
            proxy.websocket_end(flow)
            continue
        body = json.dumps({"model": model, "stream": False}).encode() if request["method"] == "POST" else b""
        req = tutils.treq(method=request["method"].encode(), path=request["path"].encode(), content=body)
        req.headers.clear()
        for name, value in headers.items():
            req.headers[name] = value
        if request["method"] == "HEAD":
            exchange(proxy, tctx, tflow_reverse(req=req), tutils.tresp(status_code=404, content=b""))
            expected.append((PRE_CONNECT, "http", "none"))
            continue
        route = parse_route(request["path"])
        response = tutils.tresp(content=json.dumps(_answer(route.path, model)).encode())
        response.headers["content-type"] = "application/json"
        exchange(proxy, tctx, tflow_reverse(req=req), response)
        expected.append((NAMED[capture.stem], "http", "complete"))
    assert rows(proxy, "client, transport, usage_status") == expected
    # a pre-connect's 404 is not an error
    assert all(error is None for status, error in rows(proxy, "usage_status, error") if status == "none")


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        # What other tools send (their source), against patterns that are easy to get wrong.
        ({"x-title": "Roo Code", "http-referer": "https://github.com/RooVetGit/Roo-Cline"}, "Roo Code"),
        ({"user-agent": "RooCode/3.30.0"}, "Roo Code"),
        ({"x-title": "Kilo Code", "http-referer": "https://kilocode.ai"}, "Kilo Code"),
        ({"x-title": "Cline", "http-referer": "https://cline.bot"}, "Cline"),
        ({"user-agent": "opencode/1.18.33", "anthropic-beta": "oauth-2025-04-20,claude-code-20250219"}, "opencode"),
        ({"http-referer": "https://codexample.org/", "user-agent": "curl/8.5.0"}, "curl"),
        ({"http-referer": "https://example.com/?cursor=abc", "user-agent": "curl/8.5.0"}, "curl"),
        ({"x-title": "Optimi-zed", "user-agent": "curl/8.5.0"}, "curl"),
        ({"x-stainless-lang": "js, js", "user-agent": "ls/JS 5.23.2"}, "OpenAI JS SDK"),
    ],
)
def test_names_that_are_easy_to_mistake(headers: dict[str, str], named: str) -> None:
    assert client_family({k.encode(): v for k, v in headers.items()}, "openai") == named
