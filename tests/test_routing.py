"""Parsing ``/<provider>/...`` request targets: strict about hostile paths (pure)."""

from __future__ import annotations

import pytest

from llm_usage.proxy.routing import RouteError, parse_route


@pytest.mark.parametrize(
    ("target", "slug", "path", "query"),
    [
        ("/openai/v1/chat/completions", "openai", "/v1/chat/completions", ""),
        (
            "/gemini/v1beta/models/x:generateContent?key=k&alt=sse",
            "gemini",
            "/v1beta/models/x:generateContent",
            "?key=k&alt=sse",
        ),
        ("/ollama", "ollama", "/", ""),
        ("/openai@evil.example/x", "openai@evil.example", "/x", ""),  # an unknown slug: 404 later
    ],
)
def test_parse_route(target: str, slug: str, path: str, query: str) -> None:
    route = parse_route(target)
    assert (route.slug, route.path, route.query) == (slug, path, query)


@pytest.mark.parametrize(
    "target",
    [
        "/openai/../x",
        "/openai/./x",
        "/openai/%2E%2e/x",
        "/openai/a%2fb",
        "//h/x",
        "/openai/a%5cb",
        "/openai/a\\b",
        "/openai/%0a",
        "relative",
    ],
)
def test_parse_route_refuses_hostile_targets(target: str) -> None:
    with pytest.raises(RouteError):
        parse_route(target)
