"""The addon's hooks and options inside mitmproxy's test context (no network, milliseconds).

Flows are mitmproxy's test flows; each goes through the hooks in the order mitmproxy
calls them (``request``, ``responseheaders``, the stream callable, ``response`` or
``error``), and its row is read back from the database the writer thread wrote.
"""

from __future__ import annotations

import io
import json
import sqlite3
from typing import Any

import pytest
from mitmproxy import exceptions, http
from mitmproxy import io as mitmio
from mitmproxy.test import tflow, tutils

from llm_usage.proxy.addon import LlmUsage
from tests.support.flows import tflow_reverse

Addon = tuple[LlmUsage, Any]


def _flow(path: str, body: dict[str, object] | bytes, headers: dict[str, str] | None = None, method: str = "POST"):  # type: ignore[no-untyped-def]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = tutils.treq(method=method.encode(), path=path.encode(), content=content)
    request.headers["content-type"] = "application/json"
    for key, value in (headers or {}).items():
        request.headers[key] = value
    return tflow_reverse(req=request)


def _response(body: bytes | dict[str, object], content_type: str = "application/json", status: int = 200):  # type: ignore[no-untyped-def]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return tutils.tresp(status_code=status, content=content, headers=[(b"content-type", content_type.encode())])


def request_hook(addon: LlmUsage, tctx: Any, flow: http.HTTPFlow) -> None:
    """``request`` as mitmproxy runs it: awaiting what it returns when that is awaitable."""
    result = addon.request(flow)
    if result is not None:
        tctx.master.event_loop.run_until_complete(result)


def exchange(addon: LlmUsage, tctx: Any, flow: http.HTTPFlow, response: http.Response | None) -> http.HTTPFlow:
    """One call through every hook; a streamed response's body goes through its stream callable."""
    request_hook(addon, tctx, flow)
    if flow.response is not None:  # answered by the proxy itself
        addon.response(flow)
        return flow
    flow.response = response
    if response is None:
        flow.error = flow.error or tflow.terr()
        addon.error(flow)
        return flow
    body = response.raw_content or b""
    addon.responseheaders(flow)
    if callable(response.stream):
        sent = [response.stream(body[i : i + 7]) for i in range(0, len(body), 7)] + [response.stream(b"")]
        response.content = b"".join(s if isinstance(s, bytes) else b"".join(s) for s in sent)
    addon.response(flow)
    return flow


def rows(addon: LlmUsage, columns: str) -> list[tuple[Any, ...]]:
    writer = addon.settings.writer
    assert writer is not None and writer.flush(10)
    return sqlite3.connect(writer.path).execute(f"select {columns} from requests order by id").fetchall()


# ---------------------------------------------------------------- hooks and their order


def test_the_addon_is_one_object_with_mitmproxys_hooks() -> None:
    addon = LlmUsage()
    hooks = {"load", "configure", "running", "done", "request", "responseheaders", "response", "error"}
    assert all(callable(getattr(addon, hook)) for hook in hooks)
    assert not hasattr(addon, "requestheaders")  # nothing runs before the request is read


def test_the_proxys_own_pages_answer_before_routing(addon: Addon, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, tctx = addon
    routed: list[str] = []
    route = proxy.router.request
    monkeypatch.setattr(proxy.router, "request", lambda flow: routed.append(flow.request.path) or route(flow))
    page = _flow("/stats/summary", b"", {"host": "localhost:8080"}, method="GET")
    tctx.master.event_loop.run_until_complete(tctx.cycle(proxy, page))
    assert page.response is not None and page.response.status_code == 200 and routed == []
    call = _flow("/openai/v1/chat/completions", {"model": "m"})
    request_hook(proxy, tctx, call)
    assert routed == ["/openai/v1/chat/completions"] and call.response is None
    assert call.request.host == "api.openai.com"


def test_routing_rewrites_target_and_host_only(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/openai/v1/chat/completions?x=1", {"model": "m"}, {"Authorization": "Bearer k"})
    request_hook(proxy, tctx, flow)
    req = flow.request
    assert (req.scheme, req.host, req.port, req.path) == ("https", "api.openai.com", 443, "/v1/chat/completions?x=1")
    assert req.headers["host"] == "api.openai.com" and req.headers["authorization"] == "Bearer k"
    assert json.loads(req.content or b"") == {"model": "m"}  # not streaming: body unchanged


def test_routing_an_http2_request_sets_its_authority(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/gemini/v1beta/models", {})
    flow.request.http_version = "HTTP/2.0"
    flow.request.authority = "localhost:8080"
    flow.request.headers.pop("host", None)
    request_hook(proxy, tctx, flow)
    assert flow.request.authority == "generativelanguage.googleapis.com"
    assert "host" not in flow.request.headers  # HTTP/2 carries it as :authority only
    assert flow.request.url == "https://generativelanguage.googleapis.com/v1beta/models"


def test_routing_keeps_a_non_default_port_in_host(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/ollama/api/chat", {"model": "llama3"})
    request_hook(proxy, tctx, flow)
    provider = proxy.settings.providers["ollama"]
    assert flow.request.headers["host"] == f"{provider.host}:{provider.port}"
    assert (flow.request.host, flow.request.port) == (provider.host, provider.port)


def test_the_dashboard_cookie_never_reaches_a_provider(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/openai/v1/chat/completions", {"model": "m"}, {"Cookie": "a=1; llm_usage_session=secret; b=2"})
    request_hook(proxy, tctx, flow)
    assert flow.request.headers["cookie"] == "a=1; b=2"
    only = _flow("/openai/v1/chat/completions", {"model": "m"}, {"Cookie": "llm_usage_session=secret"})
    request_hook(proxy, tctx, only)
    assert "cookie" not in only.request.headers


def test_only_streamed_responses_get_a_stream_callable(addon: Addon) -> None:
    proxy, tctx = addon
    buffered = _flow("/openai/v1/chat/completions", {"model": "m"})
    request_hook(proxy, tctx, buffered)
    buffered.response = _response(b"{}")
    proxy.responseheaders(buffered)
    assert not buffered.response.stream
    streamed = _flow("/openai/v1/chat/completions", {"model": "m", "stream": True})
    request_hook(proxy, tctx, streamed)
    assert json.loads(streamed.request.content or b"")["stream_options"] == {"include_usage": True}
    streamed.response = _response(b"", "text/event-stream")
    proxy.responseheaders(streamed)
    assert callable(streamed.response.stream)


# ---------------------------------------------------------------- rows


def test_a_call_becomes_one_row_and_the_flow_comment(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/anthropic/v1/messages", {"model": "claude-sonnet-4-5"}, {"User-Agent": "claude-cli/2.0.1"})
    usage = {
        "input_tokens": 3,
        "output_tokens": 33,
        "cache_read_input_tokens": 1111,
        "cache_creation_input_tokens": 418,
    }
    exchange(proxy, tctx, flow, _response({"model": "claude-sonnet-4-5-20250929", "usage": usage}))
    proxy.error(flow)  # a late error hook must not add a second row
    assert rows(proxy, "model, input_tokens, output_tokens, client, usage_status") == [
        ("claude-sonnet-4-5-20250929", 1532, 33, "Claude Code", "complete")
    ]
    assert flow.comment.startswith("anthropic  claude-sonnet-4-5-20250929  in 1,532 (cached 1,111)")


def test_a_streamed_call_with_injected_usage(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True})
    upstream = (
        b'data: {"model":"gpt-4o-mini-2024-07-18","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    exchange(proxy, tctx, flow, _response(upstream, "text/event-stream"))
    assert flow.response is not None
    assert flow.response.content == (  # what the client got: the stream it asked for
        b'data: {"model":"gpt-4o-mini-2024-07-18","choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    )
    assert rows(proxy, "model, input_tokens, output_tokens, streaming, usage_status") == [
        ("gpt-4o-mini-2024-07-18", 5, 2, 1, "complete")
    ]


def test_an_unreachable_upstream_is_a_row(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini"})
    exchange(proxy, tctx, flow, None)
    assert rows(proxy, "model, status_code, error, usage_status") == [("gpt-4o-mini", None, "error", None)]


def test_local_answers_are_not_rows(addon: Addon) -> None:
    proxy, tctx = addon
    flow = exchange(proxy, tctx, _flow("/nope/v1/x", {}), None)
    assert flow.response is not None and flow.response.status_code == 404
    assert json.loads(flow.response.content or b"")["providers"][:2] == ["anthropic", "gemini"]
    assert rows(proxy, "count(*)") == [(0,)]


def test_a_model_list_is_not_a_call_with_missing_usage(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/openai/v1/models", b"", method="GET")
    exchange(proxy, tctx, flow, _response({"object": "list", "data": []}))
    assert rows(proxy, "method, usage_status, cost_usd, error") == [("GET", "none", None, None)]


def test_token_counting_owes_no_usage(addon: Addon) -> None:
    proxy, tctx = addon
    exchange(proxy, tctx, _flow("/anthropic/v1/messages/count_tokens", {"model": "c"}), _response({"input_tokens": 12}))
    assert rows(proxy, "usage_status, cost_usd, input_tokens") == [("none", None, None)]


def test_a_body_with_a_lone_surrogate_is_still_routed_injected_and_recorded(addon: Addon) -> None:
    proxy, tctx = addon
    raw = b'{"model": "m\\ud83d", "stream": true, "messages": [{"role": "user", "content": "cut \\ud83d"}]}'
    flow = _flow("/openai/v1/chat/completions", raw)
    request_hook(proxy, tctx, flow)
    assert flow.request.content == b'{"stream_options":{"include_usage":true},' + raw[1:]  # other bytes kept
    flow.response = _response(b"", "text/event-stream")
    proxy.responseheaders(flow)
    proxy.response(flow)
    assert rows(proxy, "model, usage_status") == [("m?", "missing")]  # the lone surrogate replaced


def test_an_error_page_that_echoes_the_key_is_stored_without_it(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSECRETKEY12345", b"{}")
    page = b"<html>502 Bad Gateway for /v1beta/models/gemini-2.5-flash:generateContent?key=AIzaSECRETKEY12345</html>"
    exchange(proxy, tctx, flow, _response(page, "text/html", 502))
    ((error,),) = rows(proxy, "error")
    assert "AIzaSECRETKEY12345" not in error and "[redacted]" in error


def test_a_response_supplied_without_responseheaders_is_still_read(addon: Addon) -> None:
    """Another addon (a replay, map_local) may answer without the responseheaders hook."""
    proxy, tctx = addon
    flow = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini"})
    request_hook(proxy, tctx, flow)
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    flow.response = _response({"model": "gpt-4o-mini-2024-07-18", "usage": usage})
    flow.response.encode("gzip")
    proxy.response(flow)
    assert rows(proxy, "input_tokens, output_tokens") == [(7, 2)]


# ---------------------------------------------------------------- saving flows


def test_flows_save_and_load_after_the_hooks_ran(addon: Addon) -> None:
    """mitmproxy serializes flow.metadata when it saves flows (-w, mitmweb's Save,
    save_stream_file): nothing of ours there may make a flow unsavable."""
    proxy, tctx = addon
    plain = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini"})
    exchange(proxy, tctx, plain, _response({"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1}}))
    streamed = _flow("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True})
    exchange(proxy, tctx, streamed, _response(b'data: {"choices":[]}\n\ndata: [DONE]\n\n', "text/event-stream"))
    failed = exchange(proxy, tctx, _flow("/openai/v1/chat/completions", {"model": "m"}), None)
    page = _flow("/stats/summary", b"", method="GET")
    request_hook(proxy, tctx, page)
    refused = exchange(proxy, tctx, _flow("/nope/x", {}), None)
    saved = [plain, streamed, failed, page, refused]
    assert rows(proxy, "count(*)") == [(3,)]  # and every comment is set by now
    buffer = io.BytesIO()
    writer = mitmio.FlowWriter(buffer)
    for flow in saved:
        writer.add(flow)
    buffer.seek(0)
    loaded = list(mitmio.FlowReader(buffer).stream())
    assert [f.id for f in loaded] == [f.id for f in saved]
    assert [f.request.url for f in loaded] == [f.request.url for f in saved]
    assert loaded[0].comment.startswith("openai  gpt-4o-mini  in 1")
    assert loaded[3].metadata == {"llm_usage.web": True}


# ---------------------------------------------------------------- options


def test_options_and_their_environment_defaults(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mitmproxy.test import taddons

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PROXY_DB_PATH=from-dotenv.db\nOLLAMA_BASE_URL=http://10.0.0.5:11434\n")
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://10.0.0.9:11434")  # the environment wins over .env
    proxy = LlmUsage()
    with taddons.context(proxy) as tctx:
        assert tctx.options.llm_usage_db == "from-dotenv.db"
        assert tctx.options.llm_usage_ollama_base_url == "http://10.0.0.9:11434"
        assert (tctx.options.llm_usage_providers, tctx.options.llm_usage_pricing) == ("", "")
        assert tctx.options.llm_usage_stats_token == ""
        tctx.options.add_option("connection_strategy", str, "eager", "mitmproxy's (its proxyserver addon)")
        proxy.configure(set(tctx.options.keys()))
        assert proxy.settings.providers["ollama"].base_url == "http://10.0.0.9:11434"
        assert tctx.options.connection_strategy == "lazy"  # routed by path: nothing to connect to early
        tctx.configure(proxy, llm_usage_db=str(tmp_path / "chosen.db"))  # an explicit --set wins
        assert proxy.settings.writer is not None and proxy.settings.writer.path == str(tmp_path / "chosen.db")
        proxy.done()


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("llm_usage_providers", "missing.yaml", "llm_usage_providers: missing.yaml: cannot read"),
        ("llm_usage_pricing", "missing.yaml", "llm_usage_pricing: missing.yaml: cannot read"),
        ("llm_usage_ollama_base_url", "ftp://x", "llm_usage_providers: providers.yaml: ollama.base_url"),
        ("llm_usage_db", "", "llm_usage_db: must name a SQLite file"),
        ("llm_usage_db", "/nonexistent/dir/u.db", "llm_usage_db: cannot use '/nonexistent/dir/u.db'"),
    ],
)
def test_a_bad_option_while_running_is_refused_and_rolled_back(
    addon: Addon, option: str, value: str, named: str
) -> None:
    proxy, tctx = addon
    before = (tctx.options.__getattr__(option), proxy.settings.providers, proxy.settings.writer)
    with pytest.raises(exceptions.OptionsError) as refused:
        tctx.configure(proxy, **{option: value})
    assert str(refused.value).startswith(named)
    assert (tctx.options.__getattr__(option), proxy.settings.providers, proxy.settings.writer) == before


def test_a_new_database_gets_the_next_rows_and_the_old_one_keeps_its_own(addon: Addon, tmp_path: Any) -> None:
    proxy, tctx = addon
    first = proxy.settings.writer
    exchange(proxy, tctx, _flow("/openai/v1/models", b"", method="GET"), _response({"data": []}))
    tctx.configure(proxy, llm_usage_db=str(tmp_path / "second.db"))
    exchange(proxy, tctx, _flow("/openai/v1/models", b"", method="GET"), _response({"data": []}))
    assert first is not None and first is not proxy.settings.writer
    assert sqlite3.connect(first.path).execute("select count(*) from requests").fetchone() == (1,)
    assert rows(proxy, "count(*)") == [(1,)]


def test_quitting_writes_every_row_handed_over(addon: Addon) -> None:
    proxy, tctx = addon
    writer = proxy.settings.writer
    assert writer is not None
    for _ in range(50):
        exchange(proxy, tctx, _flow("/openai/v1/models", b"", method="GET"), _response({"data": []}))
    proxy.done()  # at once: the writer gathers rows for a moment before each write
    assert proxy.settings.writer is None
    assert sqlite3.connect(writer.path).execute("select count(*) from requests").fetchone() == (50,)


@pytest.mark.parametrize("enabled", [False, True], ids=["default-off", "on"])
def test_price_updates_are_opt_in_and_never_wait(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, enabled: bool) -> None:
    """Off by default (the proxy makes no request of its own); on, genai-prices' updater
    is started without waiting for a fetch, and stopped with the proxy."""
    from mitmproxy.test import taddons

    from llm_usage.proxy import settings as settings_module

    calls: list[tuple[str, object]] = []

    class Updater:
        def start(self, *, wait: bool | float = False) -> None:
            calls.append(("start", wait))

        def stop(self) -> None:
            calls.append(("stop", None))

    monkeypatch.setattr(settings_module, "UpdatePrices", Updater)
    proxy = LlmUsage()
    with taddons.context(proxy) as tctx:
        options = {"llm_usage_db": str(tmp_path / "u.db")} | ({"llm_usage_update_prices": "true"} if enabled else {})
        tctx.options.update(**options)
        proxy.configure(set(tctx.options.keys()))
        proxy.running()
        proxy.done()
    assert calls == ([("start", False), ("stop", None)] if enabled else [])


@pytest.mark.parametrize("name", ["authorization", "x-api-key"])
def test_a_subscription_login_behind_a_key_in_a_repeated_header_is_refused(addon: Addon, name: str) -> None:
    """Two lines of the same header: the second (a subscription's login) must not slip past the first."""
    proxy, tctx = addon
    flow = _flow("/anthropic/v1/messages", {"model": "m"})
    prefix = "Bearer " if name == "authorization" else ""
    flow.request.headers.add(name, prefix + "sk-ant-api03-" + "k" * 300)
    flow.request.headers.add(name, prefix + "sk-ant-oat01-abcdefghijklmnop")
    request_hook(proxy, tctx, flow)
    assert flow.response is not None and flow.response.status_code == 403


@pytest.mark.parametrize(
    ("path", "headers", "error_path"),
    [
        ("/anthropic/v1/messages", {"authorization": "Bearer sk-ant-oat01-abcdefghijklmnop"}, ("error", "message")),
        ("/anthropic/v1/messages", {"x-api-key": "sk-ant-api03-key", "anthropic-beta": "oauth-2025-04-20"},
         ("error", "message")),
        ("/openai/v1/responses", {"authorization": "Bearer eyJhbGciOi", "chatgpt-account-id": "acct-1"},
         ("error", "message")),
        ("/gemini/v1beta/models/gemini-2.5-pro:generateContent", {"authorization": "Bearer sk-ant-oat01-x"},
         ("error", "message")),
        ("/ollama/api/chat", {"authorization": "Bearer sk-ant-oat01-x"}, ("error",)),
    ],
)  # fmt: skip
def test_subscription_credentials_are_refused_in_the_clients_format(
    addon: Addon, caplog: pytest.LogCaptureFixture, path: str, headers: dict[str, str], error_path: tuple[str, ...]
) -> None:
    proxy, tctx = addon
    flow = _flow(path, {"model": "m"}, headers)
    request_hook(proxy, tctx, flow)
    assert flow.response is not None and flow.response.status_code == 403  # answered here, never forwarded
    message: Any = json.loads(flow.response.content or b"")
    for key in error_path:
        message = message[key]
    assert "subscription" in message and "API key" in message
    assert flow.request.host != "api.anthropic.com" or flow.request.path == path  # not retargeted
    assert "sk-ant-oat01" not in caplog.text and "eyJhbG" not in caplog.text and "refused" in caplog.text
    assert rows(proxy, "count(*)") == [(0,)]


def test_an_api_key_is_not_mistaken_for_a_subscription(addon: Addon) -> None:
    proxy, tctx = addon
    flow = _flow("/anthropic/v1/messages", {"model": "m"}, {"x-api-key": "sk-ant-api03-key", "anthropic-beta": "x"})
    request_hook(proxy, tctx, flow)
    assert flow.response is None and flow.request.host == "api.anthropic.com"


def test_the_seeds_pricing_json_is_used_when_no_file_is_given(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime

    from mitmproxy.test import taddons

    from llm_usage.parsers.usage import Usage

    caplog.set_level("INFO")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pricing.json").write_text('{"house-model": {"input": 1.0, "output": 2.0}}')
    proxy = LlmUsage()
    with taddons.context(proxy) as tctx:
        tctx.options.update(llm_usage_db=str(tmp_path / "u.db"))
        proxy.configure(set(tctx.options.keys()))
        usage = Usage(model="house-model", input_tokens=1_000_000, output_tokens=0)
        priced = proxy.settings.pricer.price("openai", "openai", usage, datetime.now(UTC))
        proxy.done()
    assert (priced.cost_usd, priced.source) == (1, "user")
    assert "prices from pricing.json win over the built-in ones (found in the working directory" in caplog.text
