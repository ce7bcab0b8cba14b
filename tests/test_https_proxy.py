"""The HTTPS_PROXY listener's decisions, as pure functions: which provider a request sent
to a host belongs to (and its path as ``/<slug>/...``), and which connections are tunnelled."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from mitmproxy.proxy import layers
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tutils

from llm_usage.config.providers import Provider, load_providers
from llm_usage.proxy.https_proxy import TunnelOtherHosts, provider_hosts, provider_path, this_machine

PROVIDERS = load_providers("", {"llm_usage_ollama_base_url": "http://localhost:11434"})
GATEWAY = Provider("gateway", "https://gateway.example/team", "openai", "https", "gateway.example", 443, "/team")
HOSTS = provider_hosts({**PROVIDERS, "gateway": GATEWAY})


def _request(url: str) -> Any:
    scheme, rest = url.split("://")
    authority, _, path = rest.partition("/")
    host, _, port = authority.partition(":")
    request = tutils.treq(method=b"POST", path=b"/" + path.encode())
    request.scheme, request.host = scheme, host
    request.port = int(port) if port else (443 if scheme == "https" else 80)
    return request


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://api.openai.com/v1/chat/completions", "/openai/v1/chat/completions"),
        ("https://API.Anthropic.com./v1/messages?beta=true", "/anthropic/v1/messages?beta=true"),
        ("https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key=k",
         "/gemini/v1beta/models/g:generateContent?key=k"),
        ("https://openrouter.ai/api/v1/chat/completions", "/openrouter/api/v1/chat/completions"),
        ("https://gateway.example/team/v1/chat/completions", "/gateway/v1/chat/completions"),  # below its path
        ("https://gateway.example/teammate/v1/chat/completions", None),  # outside its base URL's path
        ("http://api.openai.com:443/v1/chat/completions", None),  # not the provider's scheme
        ("https://api.openai.com:8443/v1/chat/completions", None),
        ("https://example.com/v1/chat/completions", None),
        ("http://localhost:11434/api/chat", "/ollama/api/chat"),
    ],
)  # fmt: skip
def test_a_request_belongs_to_the_provider_at_its_host(url: str, target: str | None) -> None:
    assert provider_path(HOSTS, _request(url)) == target


@pytest.mark.parametrize(
    ("host", "local"),
    [("localhost", True), ("LOCALHOST.", True), ("app.localhost", True), ("127.0.0.1", True), ("127.8.9.1", True),
     ("0.0.0.0", True), ("::1", True), ("[::]", True), ("::ffff:127.0.0.1", True), ("10.0.0.5", False),
     ("example.com", False), ("localhost.example.com", False)],
)  # fmt: skip
def test_this_machines_own_addresses(host: str, local: bool) -> None:
    assert this_machine(host) is local


def _decide(mode: str, address: tuple[str, int] | None) -> Any:
    context = SimpleNamespace(client=SimpleNamespace(proxy_mode=ProxyMode.parse(mode)),
                              server=SimpleNamespace(address=address))  # fmt: skip
    nextlayer = SimpleNamespace(context=context, layer=None)
    TunnelOtherHosts(lambda: HOSTS).next_layer(nextlayer)  # type: ignore[arg-type]
    return nextlayer.layer


def test_only_the_providers_hosts_are_decrypted_on_the_regular_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    monkeypatch.setattr(layers, "TCPLayer", lambda context, ignore: made.append(ignore) or "tunnel")
    assert _decide("regular", ("github.com", 443)) == "tunnel" and made == [True]
    assert _decide("regular", ("api.openai.com", 443)) is None  # mitmproxy's own decision: intercept
    assert _decide("regular", ("api.openai.com.", 443)) is None
    assert _decide("regular", ("api.openai.com", 8443)) == "tunnel"
    assert _decide("regular", None) is None  # the listener's HTTP layer reads the CONNECT first
    assert _decide("reverse:http://127.0.0.1:9", ("127.0.0.1", 9)) is None  # the reverse listener: as before
