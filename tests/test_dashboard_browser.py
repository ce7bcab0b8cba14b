"""The dashboard in headless Chromium against a real ``mitmdump -s addon.py``.

Uses Debian's /usr/bin/chromium through Playwright (never a downloaded browser); skips,
saying why, where it is missing. With LLM_USAGE_SCREENSHOT=1 it also refreshes docs/dashboard.png
(the README's picture).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import ROOT, Proxy

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--host-resolver-rules=MAP attacker.example 127.0.0.1"]  # fmt: skip
TZ = "America/New_York"
HOSTILE = "<img src=x onerror=alert(1)>"

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium; make test does so as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-test.txt)")


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.fixture(scope="module")
def dashboard_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    from llm_usage.store.schema import open_database
    from tests.support.gen_db import generate

    workdir = tmp_path_factory.mktemp("dashboard")
    db_path = workdir / "usage.db"
    generate(db_path, rows=4000, seed=3)
    db = open_database(db_path)
    at = datetime.now(UTC) - timedelta(days=3)
    db.table("requests").insert_all(
        {"timestamp": (at + timedelta(minutes=i)).timestamp(), "provider": "openrouter",
         "model": HOSTILE, "endpoint": "/api/v1/<b>chat</b>", "method": "POST", "input_tokens": 10, "output_tokens": 2,
         "total_tokens": 12, "cost_usd": None, "status_code": 200, "usage_status": "complete",
         "client": "<script>alert(2)</script>", "error": None}
        for i in range(3)
    )  # fmt: skip
    breakdown = {"parts": {"input_tokens": 0.003, "web_searches": 0.03}, "tool_fees_usd": 0.03,
                 "unpriced": ["service_tier:priority"]}  # fmt: skip
    db.table("requests").insert(
        {"timestamp": datetime.now(UTC).timestamp(), "provider": "anthropic",
         "model": "claude-sonnet-4-5", "endpoint": "/v1/messages", "method": "POST", "input_tokens": 1000,
         "output_tokens": 0, "total_tokens": 1000, "cost_usd": 0.033, "cost_source": "genai-prices 0.2.3",
         "status_code": 200, "usage_status": "complete", "service_tier": "priority",
         "cost_breakdown": json.dumps(breakdown)}
    )  # fmt: skip
    db.close()
    labels = workdir / "keys.yaml"
    labels.write_text("alice-laptop: key-3fa9c1d2\n")
    running = Proxy(workdir, ["--set", f"llm_usage_key_labels={labels}"])
    yield running
    running.stop()


def api(proxy: Proxy, path: str, **params: str) -> Any:
    query = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in {"tz": TZ, **params}.items())
    with urllib.request.urlopen(f"{proxy.url}{path}?{query}", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def wait_loads(page: Any, after: int) -> int:
    page.wait_for_function(f"() => Number(document.documentElement.dataset.loads || 0) > {after}", timeout=10_000)
    return int(page.evaluate("() => Number(document.documentElement.dataset.loads)"))


def test_dashboard_in_chromium(dashboard_proxy: Proxy, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id=TZ, color_scheme="light")
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

    page.goto(dashboard_proxy.url + "/dashboard")
    loads = wait_loads(page, 0)

    # totals: the same as the API's (the page asks in the browser's time zone)
    summary = api(dashboard_proxy, "/stats/summary", days="30")
    totals = summary["totals"]
    assert digits(page.text_content("#card-requests") or "") == str(totals["total_requests"])
    assert digits(page.get_attribute("#card-tokens", "title") or "") == str(totals["total_tokens"])
    assert f"{totals['unpriced_requests']:,} unpriced" in (page.text_content("#card-cost-sub") or "")
    assert digits(page.text_content("#q-errors") or "") == str(totals["error_requests"])
    assert any(f"tz={TZ.replace('/', '%2F')}" in url for url in requests)
    provider_rows = page.locator("#providers tbody tr")
    assert provider_rows.count() == len(summary["by_provider"])

    # each model's speed: p50 · p95 of the time, the first token, tokens/s, as the API has them
    top = api(dashboard_proxy, "/stats/by-model", days="30")["models"][0]
    cells = page.locator("#models tbody tr:first-child td").all_text_contents()
    seconds = lambda ms: f"{round(ms)} ms" if ms < 1000 else f"{ms / 1000:.{2 if ms < 10000 else 1}f} s"  # noqa: E731
    assert cells[6] == f"{seconds(top['duration_p50_ms'])} · {seconds(top['duration_p95_ms'])}", cells
    assert cells[8] == ("—" if top["output_tokens_per_s"] is None else f"{round(top['output_tokens_per_s']):,}")
    # hostile names stay text
    assert page.locator(f"#models td.name >> text={HOSTILE}").count() == 1
    assert page.locator("main img, main script, main b").count() == 0
    # The README's picture: refreshed on request only, so a test run never edits the repo.
    if os.environ.get("LLM_USAGE_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "dashboard.png"))

    # the newest call's cost, by billed dimension, and what its price could not account for
    title = page.get_attribute("#log tbody tr:first-child td:nth-child(8)", "title") or ""
    assert "web searches: $0.030" in title and "not priced (so the cost is too low): service tier:priority" in title
    assert "tier priority" in title
    assert page.text_content("#q-incomplete") == str(
        api(dashboard_proxy, "/stats/summary", days="30")["totals"]["incompletely_priced_requests"]
    )

    # pagination of the request log
    log = api(dashboard_proxy, "/stats/requests", days="30", limit="50")
    assert log["total"] > 100
    assert page.text_content("#page-info") == f"1\N{EN DASH}50 of {log['total']:,}"
    first_ids = page.eval_on_selector_all("#log tbody tr", "rows => rows.map(r => r.dataset.key)")
    assert first_ids == [str(r["id"]) for r in log["requests"]]
    page.click("#next")
    loads = wait_loads(page, loads)
    assert page.text_content("#page-info") == f"51\N{EN DASH}100 of {log['total']:,}"
    second = api(dashboard_proxy, "/stats/requests", days="30", limit="50", offset="50")
    assert page.eval_on_selector_all("#log tbody tr", "rows => rows.map(r => r.dataset.key)") == [
        str(r["id"]) for r in second["requests"]
    ]
    page.click("#prev")
    loads = wait_loads(page, loads)
    assert page.text_content("#page-info", timeout=5000).startswith("1\N{EN DASH}50")

    # a provider filter from its table row
    page.click("#providers tbody tr >> nth=0 >> button.link")
    loads = wait_loads(page, loads)
    top = summary["by_provider"][0]["provider"]
    assert top in (page.text_content("#chip-list") or "")
    filtered = api(dashboard_proxy, "/stats/summary", days="30", provider=top)["totals"]
    assert digits(page.text_content("#card-requests") or "") == str(filtered["total_requests"])
    providers_in_log = page.eval_on_selector_all("#log tbody td:nth-child(3)", "cells => cells.map(c => c.textContent)")
    assert providers_in_log and set(providers_in_log) == {top}

    # the status filter
    page.select_option("#status", "error")
    loads = wait_loads(page, loads)
    errors = api(dashboard_proxy, "/stats/requests", days="30", provider=top, status="error", limit="50")
    assert page.locator("#log tbody tr").count() == len(errors["requests"]) > 0
    assert page.locator("#log tbody .badge.bad").count() == len(errors["requests"])

    # auto-refresh keeps the reader's place: filters, scroll, and the same row nodes
    page.select_option("#status", "")
    loads = wait_loads(page, loads)
    page.evaluate("() => window.scrollTo(0, 900)")
    page.evaluate("() => { document.querySelector('#log tbody tr').dataset.marker = 'kept'; }")
    page.evaluate("() => window.llmUsage.refresh()")
    loads = wait_loads(page, loads)
    assert page.evaluate("() => window.scrollY") == 900
    assert page.evaluate("() => document.querySelector('#log tbody tr').dataset.marker") == "kept"
    assert top in (page.text_content("#chip-list") or "")

    # the theme toggle
    page.click("#theme")
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"

    assert problems == []
    assert requests and all(url.startswith(dashboard_proxy.url + "/") for url in requests), requests
    context.close()


def test_dashboard_on_a_phone(dashboard_proxy: Proxy, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, color_scheme="dark")
    page = context.new_page()
    page.goto(dashboard_proxy.url + "/dashboard#days=7")
    wait_loads(page, 0)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling of the page
    assert page.is_visible("#card-cost") and page.is_visible("#chart")
    context.close()


def test_a_rebinding_page_cannot_read_the_stats(dashboard_proxy: Proxy, browser: Any) -> None:
    """DNS rebinding, in a real browser: attacker.example resolves to the proxy's address
    (here by Chromium's resolver rules, see ARGS), so the page and /stats are one origin to
    the browser -- but the request still says ``Host: attacker.example``, and gets a 403."""
    port = dashboard_proxy.url.rsplit(":", 1)[1]
    page = browser.new_page()
    try:
        response = page.goto(f"http://attacker.example:{port}/stats/requests")
        assert response is not None and response.status == 403
        seen = page.evaluate("async () => (await fetch('/stats/summary')).status")  # the page's own script
        assert seen == 403 and "openrouter" not in page.content()
        home = page.goto(f"{dashboard_proxy.url}/stats/summary")  # the real name still works
        assert home is not None and home.status == 200
    finally:
        page.close()


def test_the_seeds_database_in_every_endpoint_and_the_dashboard(tmp_path: Path, browser: Any) -> None:
    """The seed's exact table with a week of its REAL-timestamp rows, and ISO rows an earlier
    release appended: the proxy converts them, and every endpoint and the dashboard's views
    (the "All" one too) count every row, as a query written for the seed's schema does."""
    import sqlite3
    import time

    from tests.support.seed_db import make_seed_db, week_of_rows

    now = time.time()
    path = tmp_path / "usage.db"
    make_seed_db(path, week_of_rows(now - 60))
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO requests (timestamp, provider, model, endpoint, method, input_tokens, output_tokens, "
        "total_tokens, cost_usd, status_code) VALUES (?, 'openai', 'gpt-4o-mini', '/v1/chat/completions', 'POST', "
        "100, 10, 110, 0.0001, 200)",
        [(datetime.fromtimestamp(now - 600 * i, UTC).isoformat(timespec="milliseconds"),) for i in range(1, 11)],
    )
    conn.commit()
    conn.close()
    proxy = Proxy(tmp_path, [])
    try:
        assert api(proxy, "/healthz")["ok"] is True  # answered once the addon has opened (and migrated) the file
        sql = sqlite3.connect(path)
        assert sql.execute("SELECT typeof(timestamp), count(*) FROM requests GROUP BY 1").fetchall() == [("real", 710)]
        seed_query = "SELECT count(*), sum(cost_usd) FROM requests WHERE timestamp > strftime('%s', 'now', '-8 days')"
        count, cost = sql.execute(seed_query).fetchone()
        assert count == 710

        totals = api(proxy, "/stats/summary", days="30")["totals"]
        assert totals["total_requests"] == 710 and totals["total_cost_usd"] == pytest.approx(cost)
        per_provider = dict(sql.execute("SELECT provider, count(*) FROM requests GROUP BY provider").fetchall())
        for path_, key in (("/stats/by-provider", "providers"), ("/stats/summary", "by_provider")):
            got = api(proxy, path_, days="30")[key]
            assert {p["provider"]: p["requests"] for p in got} == per_provider
        models = api(proxy, "/stats/by-model", days="30")["models"]
        assert sum(m["requests"] for m in models) == 710
        assert sum(c["requests"] for c in api(proxy, "/stats/by-client", days="30")["clients"]) == 710
        log = api(proxy, "/stats/requests", days="30", limit="500")
        assert log["total"] == 710 and len(log["requests"]) == 500
        newest = sql.execute("SELECT max(timestamp) FROM requests").fetchone()[0]
        assert log["requests"][0]["timestamp"] == datetime.fromtimestamp(newest, UTC).isoformat(timespec="milliseconds")
        until = datetime.now(UTC).isoformat()
        for params in ({"days": "7"}, {"until": until}, {"days": "7", "bucket": "hour"}):
            series = api(proxy, "/stats/timeseries", **params)
            since = series["window"]["since"]
            low = datetime.fromisoformat(since).timestamp() if since else 0
            want = sql.execute("SELECT count(*) FROM requests WHERE timestamp >= ?", [low]).fetchone()[0]
            assert sum(p["requests"] for p in series["points"]) == want > 600, params

        context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id=TZ)
        page = context.new_page()
        for view in ("all", "30"):
            page.goto(f"{proxy.url}/dashboard#days={view}")
            wait_loads(page, 0)
            assert page.is_hidden("#banner"), page.text_content("#banner")
            assert digits(page.text_content("#card-requests") or "") == "710", view
            page.goto("about:blank")
        context.close()
        sql.close()
    finally:
        proxy.stop()


def test_sessions_projects_and_keys(dashboard_proxy: Proxy, browser: Any) -> None:
    """The sessions panel lists the API's latest sessions; a click on one shows its requests;
    project and key rows filter the page; keys show their labels, never more than a fingerprint."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id=TZ)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(dashboard_proxy.url + "/dashboard")
    loads = wait_loads(page, 0)

    sessions = api(dashboard_proxy, "/stats/by-session", days="30", limit="10")
    assert sessions["total_sessions"] > 10
    shown = page.eval_on_selector_all("#sessions tbody tr", "rows => rows.map(r => r.dataset.key.slice(2))")
    assert shown == [s["session_id"] for s in sessions["sessions"]]
    first = sessions["sessions"][0]
    page.click("#sessions tbody tr:first-child button.link")
    loads = wait_loads(page, loads)
    assert f"session: {first['session_id']}" in (page.text_content("#chip-list") or "")
    log = api(dashboard_proxy, "/stats/requests", days="30", session=first["session_id"])
    assert log["total"] == first["requests"] and page.text_content("#page-info") == (
        f"1\N{EN DASH}{min(50, log['total'])} of {log['total']:,}"
    )
    assert digits(page.text_content("#card-requests") or "") == str(first["requests"])
    page.click("#clear-filters")
    loads = wait_loads(page, loads)

    projects = api(dashboard_proxy, "/stats/by-project", days="30")["projects"]
    assert page.locator("#projects tbody tr").count() == len(projects)
    page.click("#projects tbody tr >> text=webshop")
    loads = wait_loads(page, loads)
    webshop = api(dashboard_proxy, "/stats/summary", days="30", project="webshop")["totals"]
    assert digits(page.text_content("#card-requests") or "") == str(webshop["total_requests"])
    page.click("#clear-filters")
    loads = wait_loads(page, loads)

    keys = page.eval_on_selector_all("#keys tbody td.name", "cells => cells.map(c => c.textContent)")
    assert "alice-laptop \N{MIDDLE DOT} key-3fa9c1d2" in keys and all(
        k.startswith(("key-", "alice", "(no key)")) for k in keys
    )
    page.click("#keys tbody tr >> text=alice-laptop")
    loads = wait_loads(page, loads)
    alice = api(dashboard_proxy, "/stats/summary", days="30", key="alice-laptop")["totals"]  # a label works too
    assert digits(page.text_content("#card-requests") or "") == str(alice["total_requests"]) != "0"
    assert "key: alice-laptop" in (page.text_content("#chip-list") or "")
    assert problems == []
    context.close()


def test_budgets_as_bars_and_a_banner_while_one_blocks(tmp_path: Path, browser: Any) -> None:
    from llm_usage.store.schema import open_database

    db = open_database(str(tmp_path / "usage.db"))
    db.table("requests").insert(
        {"timestamp": datetime.now(UTC).timestamp() - 60, "provider": "openai", "model": "gpt-4o-mini",
         "endpoint": "/v1/chat/completions", "method": "POST", "input_tokens": 10, "output_tokens": 2,
         "total_tokens": 12, "cost_usd": 2.0, "status_code": 200, "usage_status": "complete"}
    )  # fmt: skip
    db.close()
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "timezone: America/New_York\nbudgets:\n"
        "  - {name: openai-daily, period: day, limit_usd: 1.5, scope: {provider: openai}, action: block}\n"
        "  - {name: monthly, period: month, limit_usd: 100}\n"
    )
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_budgets={budgets}"])
    try:
        page = browser.new_page()
        page.goto(proxy.url + "/dashboard")
        wait_loads(page, 0)
        assert page.is_visible("#budgets-panel")
        names = page.eval_on_selector_all("#budgets li .name", "nodes => nodes.map(n => n.textContent)")
        assert names == ["openai-daily", "monthly"]
        blocking = page.locator("#budgets li.blocking")
        assert blocking.count() == 1 and "$2.00 of $1.50" in (blocking.text_content() or "")
        assert page.eval_on_selector("#budgets li.blocking .meter span", "n => n.style.width") == "100%"
        assert page.eval_on_selector("#budgets li.ok .meter span", "n => n.style.width") == "2%"
        banner = page.text_content("#budget-banner") or ""
        assert page.is_visible("#budget-banner") and "openai-daily" in banner and "calls are refused" in banner
        page.close()
    finally:
        proxy.stop()
