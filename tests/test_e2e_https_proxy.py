"""The HTTPS_PROXY listener: real SDK clients through ``HTTPS_PROXY``, trusting the proxy's
(test) CA, reach a local TLS mock posing as ``api.openai.com`` / ``api.anthropic.com`` (a
test-only host map in the proxy, ``tests/support/hostmap.py``: nothing reaches the
internet), and get the same rows as through ``/<provider>/``; a subscription's credential is
refused there too; any other host is tunnelled untouched, with its own certificate."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from aiohttp import web

from tests.support.harness import ROOT, Proxy, free_port
from tests.support.mock_upstream import MockUpstream
from tests.support.tls import TestCA

KEY = "sk-proj-https-proxy-test-key-000000000000"
ANTHROPIC_KEY = "sk-ant-api03-https-proxy-test-key-0000000000000000"
CHAT = [{"role": "user", "content": "hi"}]
SAME = ("provider", "model", "endpoint", "method", "input_tokens", "output_tokens", "total_tokens", "cost_usd",
        "streaming", "status_code", "usage_status", "client", "key_id", "cache_read_tokens", "session_id")  # fmt: skip


class Site:
    """A local HTTPS site that is no provider (``www.elsewhere.test``), with its own CA."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.hits: list[str] = []
        app = web.Application()

        async def hello(request: web.Request) -> web.Response:
            self.hits.append(request.path_qs)
            return web.Response(text="hello from elsewhere")

        app.router.add_route("*", "/{tail:.*}", hello)
        self.upstream = MockUpstream()
        self.upstream.app = app
        self.upstream.start_in_thread(tls)

    @property
    def port(self) -> int:
        return self.upstream.port


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[dict[str, Any]]:
    provider_ca, other_ca = TestCA(tmp_path / "ca-provider", "mock"), TestCA(tmp_path / "ca-other", "other")
    mock = MockUpstream().start_in_thread(provider_ca.server_context("api.openai.com", "api.anthropic.com"))
    site = Site(other_ca.server_context("www.elsewhere.test"))
    port = free_port()
    hostmap = ",".join(
        [f"{host}:443=127.0.0.1:{mock.port}" for host in ("api.openai.com", "api.anthropic.com")]
        + [f"www.elsewhere.test:443=127.0.0.1:{site.port}"]
    )
    confdir = tmp_path / "mitmproxy"
    proxy = Proxy(tmp_path, [
        "--mode", f"regular@127.0.0.1:{port}", "-s", str(ROOT / "tests" / "support" / "hostmap.py"),
        "--set", f"hostmap={hostmap}", "--set", f"ssl_verify_upstream_trusted_ca={provider_ca.cert_path}",
        "--set", f"confdir={confdir}",
    ])  # fmt: skip
    try:
        yield {"proxy": proxy, "port": port, "mock": mock, "site": site, "other_ca": other_ca,
               "proxy_ca": confdir / "mitmproxy-ca-cert.pem"}  # fmt: skip
    finally:
        proxy.stop()
        mock.stop()
        site.upstream.stop()


def _calls(openai_client: openai.OpenAI, anthropic_client: anthropic.Anthropic) -> None:
    """The same traffic each way: chat (plain and streamed, with the usage option added by
    the proxy) and an Anthropic stream."""
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    for _ in openai_client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, stream=True):  # type: ignore[arg-type]
        pass
    with anthropic_client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=CHAT) as stream:  # type: ignore[arg-type]
        stream.get_final_message()


def test_https_proxy_clients_get_the_same_rows_as_the_reverse_path(
    capture: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy: Proxy = capture["proxy"]
    headers = {"x-session-id": "same-session"}
    _calls(
        openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key=KEY, default_headers=headers),
        anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", api_key=ANTHROPIC_KEY, default_headers=headers),
    )
    reverse = proxy.rows_after(0, 3)

    # As a person would: the environment only (the SDKs' default base URLs, httpx reading
    # HTTPS_PROXY and SSL_CERT_FILE), trusting the proxy's CA.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{capture['port']}")
    monkeypatch.setenv("SSL_CERT_FILE", str(capture["proxy_ca"]))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    _calls(openai.OpenAI(api_key=KEY, default_headers=headers),
           anthropic.Anthropic(api_key=ANTHROPIC_KEY, default_headers=headers))  # fmt: skip
    captured = proxy.rows_after(reverse[-1]["id"], 3)

    assert [{k: r[k] for k in SAME} for r in captured] == [{k: r[k] for k in SAME} for r in reverse]
    assert all(r["cost_usd"] and r["input_tokens"] for r in captured)
    seen = capture["mock"].requests[-3:]
    assert [r["headers"].get("host") for r in seen] == ["api.openai.com", "api.openai.com", "api.anthropic.com"]
    assert json.loads(seen[1]["body"])["stream_options"] == {"include_usage": True}  # the same injection rules

    # A subscription's OAuth credential is refused here too, and never forwarded.
    before = len(capture["mock"].requests)
    oauth = anthropic.Anthropic(auth_token="sk-ant-oat01-" + "x" * 40, api_key=None)
    with pytest.raises(anthropic.PermissionDeniedError, match="subscription"):
        oauth.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=CHAT)  # type: ignore[arg-type]
    assert len(capture["mock"].requests) == before

    # The proxy's own pages are not on this listener: a provider's /stats is the provider's.
    through = httpx.Client(proxy=f"http://127.0.0.1:{capture['port']}", verify=ssl.create_default_context(
        cafile=str(capture["proxy_ca"])))  # fmt: skip
    assert "endpoints" not in through.get("https://api.openai.com/stats").text


def test_any_other_host_is_tunnelled_with_its_own_certificate(capture: dict[str, Any]) -> None:
    """A CONNECT to a host that is no provider's: the TLS goes end to end, the client sees
    the site's real certificate, and nothing of it is recorded or shown."""
    with socket.create_connection(("127.0.0.1", capture["port"]), timeout=10) as raw:
        raw.sendall(b"CONNECT www.elsewhere.test:443 HTTP/1.1\r\nHost: www.elsewhere.test:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(capture["other_ca"].cert_path))
        with context.wrap_socket(raw, server_hostname="www.elsewhere.test") as tls:  # verifies: not mitmproxy's
            assert tls.getpeercert(binary_form=True) is not None
            seen = __import__("hashlib").sha256(tls.getpeercert(binary_form=True)).digest()
            assert seen == capture["other_ca"].leaf_fingerprint("www.elsewhere.test")
            tls.sendall(b"GET /private/path?secret=1 HTTP/1.1\r\nHost: www.elsewhere.test\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
    assert b"hello from elsewhere" in reply
    assert capture["site"].hits == ["/private/path?secret=1"]
    proxy: Proxy = capture["proxy"]
    assert proxy.query("SELECT count(*) AS n FROM requests")[0]["n"] == 0
    assert "/private/path" not in proxy.output() and "secret=1" not in proxy.output()
    # this machine's own services are not relayed to (offered to a LAN, the listener would
    # otherwise open the loopback-only dashboard to it), by CONNECT or plain HTTP
    for target in (f"127.0.0.1:{proxy.port}", f"localhost:{proxy.port}", f"0.0.0.0:{proxy.port}", "[::1]:22"):
        with socket.create_connection(("127.0.0.1", capture["port"]), timeout=10) as raw:
            raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert raw.recv(4096).startswith(b"HTTP/1.1 403"), target
    plain = httpx.get(f"http://localhost:{proxy.port}/stats/summary", proxy=f"http://127.0.0.1:{capture['port']}")
    assert plain.status_code == 403 and "this machine" in plain.text
    # and a provider's host on the same listener is decrypted (mitmproxy's certificate)
    with socket.create_connection(("127.0.0.1", capture["port"]), timeout=10) as raw:
        raw.sendall(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(capture["proxy_ca"]))
        with context.wrap_socket(raw, server_hostname="api.openai.com") as tls:
            issuer = dict(x[0] for x in tls.getpeercert()["issuer"])  # type: ignore[index]
            assert issuer["organizationName"] == "mitmproxy"
