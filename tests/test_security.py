"""Credentials never stored or printed; hostile request targets never reach another host."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import types as genai_types

from tests.support.harness import Proxy
from tests.support.mock_upstream import MockUpstream

SECRETS = {
    "authorization": "sk-proj-SECRETBEARER0123456789",
    "x-api-key": "sk-ant-SECRETXAPIKEY0123456789",
    "x-goog-api-key": "AIzaSECRETGOOGKEY0123456789",
    "query": "AIzaSECRETQUERYKEY0123456789",
}


def test_credentials_pass_through_untouched_and_are_never_stored_or_printed(
    proxy: Proxy, upstream: MockUpstream, new_rows
) -> None:
    httpx.post(
        f"{proxy.url}/openai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"Authorization": f"Bearer {SECRETS['authorization']}"},
    )
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {SECRETS['authorization']}"
    httpx.post(
        f"{proxy.url}/anthropic/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [], "stream": True},
        headers={"x-api-key": SECRETS["x-api-key"]},
    )
    assert upstream.requests[-1]["headers"]["x-api-key"] == SECRETS["x-api-key"]
    client = genai.Client(
        api_key=SECRETS["x-goog-api-key"], http_options=genai_types.HttpOptions(base_url=f"{proxy.url}/gemini")
    )
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert upstream.requests[-1]["headers"]["x-goog-api-key"] == SECRETS["x-goog-api-key"]
    httpx.post(f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={SECRETS['query']}", json={})
    assert upstream.requests[-1]["query"] == f"key={SECRETS['query']}"  # the query is forwarded as sent
    # an error response too (errors are logged with the provider's message)
    httpx.post(
        f"{proxy.url}/openai/v1/chat/completions?key={SECRETS['query']}",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"Authorization": f"Bearer {SECRETS['authorization']}", "X-Mock-Status": "401"},
    )
    rows = new_rows(5)
    assert all("key=" not in (row["endpoint"] or "") for row in rows)
    time.sleep(0.3)
    stored = b"".join(p.read_bytes() for p in proxy.db_path.parent.glob(proxy.db_path.name + "*"))
    printed = proxy.output().encode()
    for secret in SECRETS.values():
        assert secret.encode() not in stored
        assert secret.encode() not in printed


@pytest.fixture
def canary() -> Iterator[MockUpstream]:
    """A second server that nothing may ever reach through the proxy."""
    mock = MockUpstream().start_in_thread()
    yield mock
    mock.stop()


def _send_raw(port: int, request_line: str, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"{request_line}\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_hostile_request_targets_never_reach_another_host(
    proxy: Proxy, upstream: MockUpstream, canary: MockUpstream
) -> None:
    c = f"127.0.0.1:{canary.port}"
    targets = [
        "GET /openai/../x HTTP/1.1",
        "GET /openai/%2e%2e/%2e%2e/x HTTP/1.1",
        "GET /openai/..%2fx HTTP/1.1",
        "GET /openai%2f..%2fx HTTP/1.1",
        "GET /openai/a%5c..%5cx HTTP/1.1",
        f"GET //{c}/v1/models HTTP/1.1",
        f"GET /openai@{c}/v1/models HTTP/1.1",
        f"GET /@{c}/v1/models HTTP/1.1",
        f"GET http://{c}/openai/v1/models HTTP/1.1",
        f"GET http://{c}/v1/models HTTP/1.1",
        f"GET /{c}/v1/models HTTP/1.1",
    ]
    before = list(upstream.requests)
    for line in targets:
        _send_raw(proxy.port, line, host=c)
    assert canary.requests == []
    forwarded = upstream.requests[len(before) :]
    # Whatever reached the configured upstream went to its own, normal path.
    assert all(req["path"] == "/v1/models" for req in forwarded), forwarded


@pytest.mark.parametrize(
    "target",
    ["/openai/../x", "/openai/%2e%2e/x", "/openai/a%2Fb", "/openai/a%5Cb", "/openai/%00", "//evil.example/x"],
)
def test_hostile_paths_get_a_clear_400(proxy: Proxy, target: str) -> None:
    response = _send_raw(proxy.port, f"GET {target} HTTP/1.1")
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b"refused" in response


def test_a_subscription_login_is_refused_and_never_forwarded(proxy: Proxy, upstream: MockUpstream) -> None:
    """Claude Code on a Claude Pro/Max login sends its OAuth token as a bearer: the real
    SDK gets a 403 it can show, the provider never sees the request, nothing is priced."""
    import anthropic

    before, rows_before = len(upstream.requests), proxy.max_id()
    token = "sk-ant-oat01-Zm9vYmFyYmF6cXV4cXV1eA"
    client = anthropic.Anthropic(base_url=f"{proxy.url}/anthropic", auth_token=token, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError, match="subscription"):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert len(upstream.requests) == before and proxy.max_id() == rows_before
    assert proxy.printed("refused POST /anthropic/v1/messages: it carries a Claude subscription's login")
    assert token not in proxy.output()
