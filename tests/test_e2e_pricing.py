"""Every billed dimension through a real mitmdump: recorded answer shapes (tests/fixtures)
replayed by the mock, each row priced with what the provider bills -- cache lifetimes,
server tools, modalities, the service tier -- and its cost broken down by dimension."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.support.fixture_cases import OWN_CASES
from tests.support.harness import Proxy

BILLED = [c for c in OWN_CASES if "details" in c.expected or "service_tier" in c.expected]


def replay(proxy: Proxy, name: str) -> None:
    case = next(c for c in OWN_CASES if c.name == name)
    url = f"{proxy.url}/{case.data['provider_format']}{case.path}"  # the built-in slugs: priced as theirs
    headers = {"content-type": "application/json", "X-Mock-Fixture": name.removesuffix(".json")}
    with httpx.stream("POST", url, json=case.request_body, headers=headers, timeout=30) as response:
        response.read()
        assert response.status_code == 200


def test_billed_dimensions_reach_the_row(proxy: Proxy, new_rows) -> None:
    assert len(BILLED) >= 7
    for case in BILLED:
        replay(proxy, case.name)
    rows = {case.name: row for case, row in zip(BILLED, new_rows(len(BILLED)), strict=True)}
    for name, row in rows.items():
        breakdown = json.loads(row["cost_breakdown"])
        total = sum(Decimal(str(v)) for v in breakdown["parts"].values())
        assert abs(total - Decimal(str(row["cost_usd"]))) < Decimal("1e-11"), name
    claude = json.loads(rows["anthropic-messages-stream-1h-cache-web-search.json"]["cost_breakdown"])
    assert claude["parts"]["web_searches"] == pytest.approx(0.03)  # $10 per 1,000 searches
    assert claude["parts"]["cache_write_1h_tokens"] == pytest.approx(10_408 * 10 / 1e6)  # Opus 4.5: 2x $5 input
    assert claude["tool_fees_usd"] == pytest.approx(0.03) and "unpriced" not in claude
    flex = rows["openai-responses-json-tools-flex.json"]
    assert flex["service_tier"] == "flex"
    parts = json.loads(flex["cost_breakdown"])["parts"]
    tokens = sum(v for k, v in parts.items() if k.endswith("_tokens"))
    assert parts["service_tier:flex"] == pytest.approx(-tokens / 2)  # o3 on flex: half the token price
    assert parts["web_searches"] == pytest.approx(0.02) and parts["storage_searches"] == pytest.approx(0.0025)
    priority = rows["anthropic-messages-json-cache-lifetimes-priority.json"]
    assert json.loads(priority["cost_breakdown"])["unpriced"] == ["service_tier:priority"]
    image = json.loads(rows["gemini-generate-stream-image-output.json"]["cost_breakdown"])["parts"]
    assert image["output_image_tokens"] == pytest.approx(1_120 * 120 / 1e6)
    summary = httpx.get(f"{proxy.url}/stats/summary?days=1").json()["totals"]
    assert summary["tool_fees_usd"] >= 0.03 + 0.0225 and summary["incompletely_priced_requests"] >= 1
    assert summary["tiered_requests"] >= 3  # flex twice, priority
