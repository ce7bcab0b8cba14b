"""The router and recorder hooks on mitmproxy test flows (no network)."""

from __future__ import annotations

import json
import sqlite3

from mitmproxy.test import tflow, tutils

from llm_usage.call import CALL_KEY


def _flow(path: str, body: dict[str, object], headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    request = tutils.treq(method=b"POST", path=path.encode(), content=json.dumps(body).encode())
    request.headers["content-type"] = "application/json"
    for key, value in (headers or {}).items():
        request.headers[key] = value
    return tflow.tflow(req=request)


def test_routing_rewrites_target_and_host_only(addon_context) -> None:
    _settings, router, _recorder, _ = addon_context
    flow = _flow("/openai/v1/chat/completions?x=1", {"model": "m"}, {"Authorization": "Bearer k"})
    router.request(flow)
    req = flow.request
    assert (req.scheme, req.host, req.port, req.path) == ("https", "api.openai.com", 443, "/v1/chat/completions?x=1")
    assert req.headers["host"] == "api.openai.com" and req.headers["authorization"] == "Bearer k"
    assert json.loads(req.content or b"") == {"model": "m"}  # not streaming: body unchanged
    assert flow.metadata[CALL_KEY].format.name == "openai"


def test_only_streamed_responses_get_a_stream_callable(addon_context) -> None:
    _settings, router, recorder, _ = addon_context
    buffered = _flow("/openai/v1/chat/completions", {"model": "m"})
    router.request(buffered)
    buffered.response = tutils.tresp(content=b"{}", headers=[(b"content-type", b"application/json")])
    recorder.responseheaders(buffered)
    assert not buffered.response.stream
    streamed = _flow("/openai/v1/chat/completions", {"model": "m", "stream": True})
    router.request(streamed)
    assert json.loads(streamed.request.content or b"")["stream_options"] == {"include_usage": True}
    streamed.response = tutils.tresp(content=None, headers=[(b"content-type", b"text/event-stream")])
    recorder.responseheaders(streamed)
    assert callable(streamed.response.stream)


def test_a_logged_call_becomes_a_row_and_the_flow_comment(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    flow = _flow("/anthropic/v1/messages", {"model": "claude-sonnet-4-5"}, {"User-Agent": "claude-cli/2.0.1"})
    router.request(flow)
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "usage": {
            "input_tokens": 3,
            "output_tokens": 33,
            "cache_read_input_tokens": 1111,
            "cache_creation_input_tokens": 418,
        },
    }
    flow.response = tutils.tresp(content=json.dumps(body).encode(), headers=[(b"content-type", b"application/json")])
    recorder.responseheaders(flow)
    recorder.response(flow)
    recorder.error(flow)  # a late error hook must not add a second row
    assert settings.accountant.flush(10)  # the row, and with it the comment, is built on the writer thread
    assert flow.comment.startswith("anthropic  claude-sonnet-4-5-20250929  in 1,532 (cached 1,111)")
    rows = (
        sqlite3.connect(settings.accountant.path)
        .execute("select model, input_tokens, output_tokens, client, usage_status from requests")
        .fetchall()
    )
    assert rows == [("claude-sonnet-4-5-20250929", 1532, 33, "Claude Code", "complete")]


def test_local_answers_are_not_rows(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    flow = _flow("/nope/v1/x", {})
    router.request(flow)
    assert flow.response is not None and flow.response.status_code == 404
    recorder.response(flow)
    assert CALL_KEY not in flow.metadata
    assert settings.accountant.flush(10)
    assert sqlite3.connect(settings.accountant.path).execute("select count(*) from requests").fetchone() == (0,)


def test_the_dashboard_cookie_never_reaches_a_provider(addon_context) -> None:
    _settings, router, _recorder, _ = addon_context
    flow = _flow("/openai/v1/chat/completions", {"model": "m"}, {"Cookie": "a=1; llm_usage_session=secret; b=2"})
    router.request(flow)
    assert flow.request.headers["cookie"] == "a=1; b=2"
    only = _flow("/openai/v1/chat/completions", {"model": "m"}, {"Cookie": "llm_usage_session=secret"})
    router.request(only)
    assert "cookie" not in only.request.headers


def test_a_model_list_is_not_a_call_with_missing_usage(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    request = tutils.treq(method=b"GET", path=b"/openai/v1/models", content=b"")
    flow = tflow.tflow(req=request)
    router.request(flow)
    flow.response = tutils.tresp(
        content=b'{"object": "list", "data": []}', headers=[(b"content-type", b"application/json")]
    )
    recorder.response(flow)
    assert settings.accountant.flush(10)
    rows = sqlite3.connect(settings.accountant.path).execute(
        "select method, usage_status, cost_usd, error from requests"
    )
    assert rows.fetchall() == [("GET", None, None, None)]


def test_a_body_with_a_lone_surrogate_is_still_routed_injected_and_recorded(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    raw = b'{"model": "m\\ud83d", "stream": true, "messages": [{"role": "user", "content": "cut \\ud83d"}]}'
    request = tutils.treq(method=b"POST", path=b"/openai/v1/chat/completions", content=raw)
    flow = tflow.tflow(req=request)
    router.request(flow)
    assert flow.request.content == b'{"stream_options":{"include_usage":true},' + raw[1:]  # other bytes kept
    flow.response = tutils.tresp(content=b"", headers=[(b"content-type", b"text/event-stream")])
    recorder.responseheaders(flow)
    recorder.response(flow)
    assert settings.accountant.flush(10)
    rows = sqlite3.connect(settings.accountant.path).execute("select model, usage_status from requests").fetchall()
    assert rows == [("m?", "missing")]  # the lone surrogate replaced, the row written


def test_token_counting_owes_no_usage(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    flow = _flow("/anthropic/v1/messages/count_tokens", {"model": "claude-sonnet-4-5"})
    router.request(flow)
    flow.response = tutils.tresp(content=b'{"input_tokens": 12}', headers=[(b"content-type", b"application/json")])
    recorder.response(flow)
    assert settings.accountant.flush(10)
    row = sqlite3.connect(settings.accountant.path).execute("select usage_status, cost_usd from requests").fetchone()
    assert row == (None, None)


def test_an_error_page_that_echoes_the_key_is_stored_without_it(addon_context) -> None:
    settings, router, recorder, _ = addon_context
    request = tutils.treq(
        method=b"POST",
        path=b"/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSECRETKEY12345",
        content=b"{}",
    )
    flow = tflow.tflow(req=request)
    router.request(flow)
    page = b"<html>502 Bad Gateway for /v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSECRETKEY12345</html>"
    flow.response = tutils.tresp(status_code=502, content=page, headers=[(b"content-type", b"text/html")])
    recorder.response(flow)
    assert settings.accountant.flush(10)
    (error,) = sqlite3.connect(settings.accountant.path).execute("select error from requests").fetchone()
    assert "AIzaSECRETKEY12345" not in error and "[redacted]" in error


def test_routing_an_http2_request_sets_its_authority(addon_context) -> None:
    _settings, router, _recorder, _ = addon_context
    flow = _flow("/gemini/v1beta/models", {})
    flow.request.http_version = "HTTP/2.0"
    flow.request.authority = "localhost:8080"
    flow.request.headers.pop("host", None)
    router.request(flow)
    assert flow.request.authority == "generativelanguage.googleapis.com"
    assert "host" not in flow.request.headers  # HTTP/2 carries it as :authority only
    assert flow.request.url == "https://generativelanguage.googleapis.com/v1beta/models"


def test_routing_keeps_a_non_default_port_in_host(addon_context) -> None:
    settings, router, _recorder, _ = addon_context
    flow = _flow("/ollama/api/chat", {"model": "llama3"})
    router.request(flow)
    provider = settings.providers["ollama"]
    assert flow.request.headers["host"] == f"{provider.host}:{provider.port}"
    assert (flow.request.host, flow.request.port) == (provider.host, provider.port)


def test_a_response_supplied_without_responseheaders_is_still_read(addon_context) -> None:
    """Another addon (a replay, map_local) may answer without the responseheaders hook."""
    settings, router, recorder, _ = addon_context
    flow = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini"})
    router.request(flow)
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    raw = json.dumps({"model": "gpt-4o-mini-2024-07-18", "usage": usage}).encode()
    flow.response = tutils.tresp(content=raw, headers=[(b"content-type", b"application/json")])
    flow.response.encode("gzip")
    recorder.response(flow)
    assert settings.accountant.flush(10)
    rows = (
        sqlite3.connect(settings.accountant.path).execute("select input_tokens, output_tokens from requests").fetchall()
    )
    assert rows == [(7, 2)]
