"""WebUI: routing of the reserved paths, HTTP details, access token, never blocking the loop."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mitmproxy.test import taddons, tutils

from llm_usage.store.schema import open_database
from llm_usage.web import pages as web
from llm_usage.web import queries as stats
from llm_usage.web.access import SESSION_COOKIE, session_value
from llm_usage.web.endpoints import ENDPOINTS
from llm_usage.web.pages import WebUI
from tests.support.flows import tflow_reverse
from tests.support.harness import Proxy

TOKEN = "s3cret-Tok3n"


def make_flow(path: str, method: str = "GET", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    request = tutils.treq(method=method.encode(), path=path.encode(), content=b"")
    request.headers["host"] = "localhost:8080"  # as a browser on this machine sends it
    for key, value in (headers or {}).items():
        request.headers[key] = value
    return tflow_reverse(req=request)


LOOP = asyncio.new_event_loop()
"""One loop for every test here: mitmproxy's test context leaves its log handler bound to
the loop it ran on, so a loop per test (``asyncio.run``) would be closed under it."""


def run(coroutine: Any) -> Any:
    return LOOP.run_until_complete(coroutine)


async def run_hook(ui: WebUI, flow: Any) -> None:
    """As mitmproxy does: call the hook, await what it returns only if it is awaitable."""
    result = ui.request(flow)
    if result is not None:
        await result


class Harness:
    """A WebUI inside mitmproxy's test context (taddons: unstable API, mitmproxy is pinned)."""

    def __init__(self, db_path: Path, token: str = "", hosts: str = "", problem: str | None = None) -> None:
        self.db_path = db_path
        self.token = token
        self.hosts = hosts
        self.problem = problem

    def call(self, *flows: Any) -> list[Any]:
        async def go() -> list[Any]:
            ui = WebUI()
            ui.writer_problem = lambda: self.problem
            with taddons.context(ui) as tctx:
                tctx.options.add_option("llm_usage_db", str, str(self.db_path), "")
                tctx.configure(ui, llm_usage_stats_token=self.token, llm_usage_allowed_hosts=self.hosts)
                try:
                    await asyncio.gather(*(run_hook(ui, f) for f in flows))
                finally:
                    ui.done()
            return list(flows)

        return run(go())

    def get(self, path: str, **kw: Any) -> Any:
        (flow,) = self.call(make_flow(path, **kw))
        return flow


def body(flow: Any) -> Any:
    return json.loads(flow.response.content)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "usage.db"
    db = open_database(path)
    db.table("requests").insert_all(
        {"timestamp": datetime(2026, 11, 20 + i % 3, 10 + i % 10, tzinfo=UTC).timestamp(), "provider": "openai",
         "model": f"m{i % 4}", "input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "cost_usd": 0.01,
         "status_code": 200, "client": "curl", "usage_status": "complete"}
        for i in range(30)
    )  # fmt: skip
    db.close()
    return path


@pytest.fixture(scope="module")
def open_ui(db_path: Path) -> Harness:
    return Harness(db_path)


@pytest.fixture(scope="module")
def locked_ui(db_path: Path) -> Harness:
    return Harness(db_path, TOKEN)


def test_other_paths_are_left_to_the_router(open_ui: Harness) -> None:
    for path in ("/openai/v1/chat/completions", "/statsx/summary", "/", "/favicon.ico", "*", ""):
        flow = open_ui.get(path)
        assert flow.response is None and web.WEB_KEY not in flow.metadata


@pytest.mark.parametrize("path", ["/stats/summary", "/stats/by-model", "/stats/by-client", "/stats/by-provider",
                                  "/stats/requests", "/stats/timeseries", "/healthz", "/stats", "/stats/"])  # fmt: skip
def test_json_endpoints(open_ui: Harness, path: str) -> None:
    flow = open_ui.get(path)
    assert flow.response.status_code == 200, flow.response.content
    assert flow.response.headers["content-type"] == "application/json"
    assert flow.response.headers["cache-control"] == "no-store"
    assert flow.metadata[web.WEB_KEY] is True
    body(flow)


def test_summary_shape_and_figures(open_ui: Harness) -> None:
    data = body(open_ui.get("/stats/summary?since=2026-11-01"))
    assert data["totals"]["total_requests"] == 30 and data["totals"]["total_cost_usd"] == pytest.approx(0.3)
    assert data["by_provider"][0]["provider"] == "openai" and data["by_client"][0]["client"] == "curl"
    page = body(open_ui.get("/stats/requests?limit=7&offset=28"))
    assert (page["total"], page["limit"], page["offset"], len(page["requests"])) == (30, 7, 28, 2)
    series = body(open_ui.get("/stats/timeseries?since=2026-11-20&until=2026-11-23&tz=Europe/Berlin"))
    assert series["tz"] == "Europe/Berlin" and series["bucket"] == "day"
    assert sum(p["requests"] for p in series["points"]) == 30


@pytest.mark.parametrize(
    ("path", "name"),
    [("/stats/summary?days=0", "days"), ("/stats/requests?limit=100000", "limit"),
     ("/stats/by-model?bogus=1", "'bogus'"), ("/stats/timeseries?tz=Nowhere/Land", "tz"),
     ("/stats/timeseries?bucket=fortnight", "bucket"),
     ("/stats/requests?offset=-5", "offset"), ("/stats/summary?since=2026-13-40", "since")],
)  # fmt: skip
def test_bad_parameters_get_400_naming_them(open_ui: Harness, path: str, name: str) -> None:
    flow = open_ui.get(path)
    assert flow.response.status_code == 400
    assert flow.response.headers["content-type"] == "application/json"
    assert body(flow)["error"].startswith(name)


def test_unknown_pages_and_methods(open_ui: Harness) -> None:
    flow = open_ui.get("/stats/nope")
    assert flow.response.status_code == 404 and "/stats/summary" in body(flow)["endpoints"]
    flow = open_ui.get("/stats/summary", method="POST")
    assert flow.response.status_code == 405 and flow.response.headers["allow"] == "GET, HEAD"
    for path in ("/dashboard/static/../web.py", "/dashboard/static/nothing.js", "/dashboard/static/.hidden"):
        assert open_ui.get(path).response.status_code == 404


def test_missing_database_gives_empty_stats(tmp_path: Path) -> None:
    ui = Harness(tmp_path / "not-yet.db")
    assert body(ui.get("/healthz")) == {"ok": True, "database": "not created yet"}
    totals = body(ui.get("/stats/summary"))["totals"]
    assert totals["total_requests"] == 0 and totals["total_cost_usd"] == 0
    assert body(ui.get("/stats/requests"))["requests"] == []
    assert not (tmp_path / "not-yet.db").exists()  # reading never creates it


def test_dashboard_page(open_ui: Harness) -> None:
    flow = open_ui.get("/dashboard")
    assert flow.response.status_code == 200
    headers = flow.response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    html = flow.response.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "everything comes from the proxy itself"
    for asset in re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', html):
        static = open_ui.get(asset)
        assert static.response.status_code == 200, asset
        content_type = static.response.headers["content-type"].split(";")[0]
        assert content_type in {"text/javascript", "text/css", "image/svg+xml", "text/plain"}
    assert open_ui.get("/dashboard/").response.status_code == 200


def test_static_assets_load_nothing_from_outside() -> None:
    for name in ("dashboard.js", "dashboard.css", "theme.js", "uPlot.min.css"):
        text = (web.STATIC / name).read_text()
        assert not re.search(r"https?://", text), name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text
    assert (web.STATIC / "uPlot.LICENSE").read_text().startswith("The MIT License")


# ---------------------------------------------------------------- the access token


def test_token_required_everywhere_but_health_and_static(locked_ui: Harness) -> None:
    for path in ("/stats/summary", "/stats/requests", "/stats/timeseries", "/stats"):
        flow = locked_ui.get(path)
        assert flow.response.status_code == 401, path
        assert flow.response.headers["www-authenticate"].startswith("Bearer")
        assert "summary" not in flow.response.text
    page = locked_ui.get("/dashboard")
    assert page.response.status_code == 401 and "access token" in page.response.text
    assert locked_ui.get("/healthz").response.status_code == 200
    assert locked_ui.get("/dashboard/static/dashboard.css").response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TOKEN}"}, {"authorization": f"bearer {TOKEN}"}, {"X-LLM-Usage-Token": TOKEN},
     {"Cookie": f"{SESSION_COOKIE}={session_value(TOKEN)}"}],
)  # fmt: skip
def test_token_accepted_and_removed_from_the_flow(locked_ui: Harness, headers: dict[str, str]) -> None:
    flow = locked_ui.get("/stats/summary", headers=headers)
    assert flow.response.status_code == 200
    for name in ("authorization", "x-llm-usage-token", "cookie"):
        assert name not in flow.request.headers


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": TOKEN}, {"X-LLM-Usage-Token": ""},
     {"Cookie": f"{SESSION_COOKIE}={TOKEN}"}, {"Cookie": f"{SESSION_COOKIE}={session_value(TOKEN + 'x')}"},
     {"X-LLM-Usage-Token": "ü" + TOKEN}],
)  # fmt: skip
def test_wrong_tokens_refused(locked_ui: Harness, headers: dict[str, str]) -> None:
    assert locked_ui.get("/stats/summary", headers=headers).response.status_code == 401


def test_token_link_sets_a_cookie_and_leaves_no_trace(locked_ui: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flow = locked_ui.get(f"/dashboard?token={TOKEN}")
    assert flow.response.status_code == 303 and flow.response.headers["location"] == "/dashboard"
    cookie = flow.response.headers["set-cookie"]
    assert (
        cookie.startswith(f"{SESSION_COOKIE}={session_value(TOKEN)};") and "HttpOnly" in cookie and TOKEN not in cookie
    )
    assert flow.request.path == "/dashboard"  # mitmproxy prints and shows the flow without it
    api = locked_ui.get(f"/stats/summary?days=2&token={TOKEN}")
    assert api.response.status_code == 200 and api.request.path == "/stats/summary?days=2"
    wrong = locked_ui.get("/dashboard?token=nope")
    assert wrong.response.status_code == 401 and "wrong" in wrong.response.text
    assert TOKEN not in caplog.text


def test_locked_page_escapes_and_has_no_token(locked_ui: Harness) -> None:
    page = locked_ui.get("/dashboard?token=%3Cscript%3E").response.text
    assert "<script>" not in page and TOKEN not in page


# ---------------------------------------------------------------- never on the event loop


def test_queries_run_off_the_event_loop(open_ui: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three queries that each wait for the other two and for the event loop to turn: they
    can only finish if they run side by side on threads while the loop keeps going (no
    timing involved: if either were not so, they would wait until the barrier breaks)."""
    loop_threads: set[int] = set()
    query_threads: set[int] = set()
    together = threading.Barrier(3, timeout=30)
    loop_turned = threading.Event()
    real_aggregate = stats.aggregate

    def waiting_aggregate(*args: Any, **kwargs: Any) -> Any:
        query_threads.add(threading.get_ident())
        together.wait()
        assert loop_turned.wait(30), "the event loop did not turn while the queries ran"
        return real_aggregate(*args, **kwargs)

    monkeypatch.setattr(stats, "aggregate", waiting_aggregate)

    async def go() -> list[Any]:
        ui = WebUI()
        with taddons.context(ui) as tctx:
            tctx.options.add_option("llm_usage_db", str, str(open_ui.db_path), "")
            loop_threads.add(threading.get_ident())

            async def ticker() -> None:
                while len(query_threads) < 3:  # every query is running, on its thread
                    await asyncio.sleep(0.01)
                loop_turned.set()

            flows = [make_flow("/stats/summary") for _ in range(3)]
            await asyncio.gather(ticker(), *(run_hook(ui, f) for f in flows))
            ui.done()
            return flows

    flows = run(go())
    assert all(f.response.status_code == 200 for f in flows)
    assert len(query_threads) == 3 and not (query_threads & loop_threads)


# ---------------------------------------------------------------- through a real mitmdump


@pytest.fixture(scope="module")
def real_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("web-proxy")
    running = Proxy(workdir, ["--set", f"llm_usage_stats_token={TOKEN}"])
    yield running
    running.stop()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_real_proxy_answers_and_never_forwards(real_proxy: Proxy) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, headers, content = fetch(real_proxy.url + "/stats/summary?days=7", auth)
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(content)["totals"]["total_requests"] == 0  # no database yet: zeros
    assert fetch(real_proxy.url + "/stats/summary")[0] == 401
    assert fetch(real_proxy.url + "/healthz")[0] == 200
    assert fetch(real_proxy.url + "/stats/summary?provider=x'%20OR%201=1--", auth)[0] == 200
    assert fetch(real_proxy.url + "/dashboard", auth)[0] == 200
    status, _, content = fetch(real_proxy.url + "/stats/../openai/v1/models", auth)
    assert status in (400, 404)
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # follows the 303 with the cookie
    with browser.open(real_proxy.url + f"/dashboard?token={TOKEN}", timeout=10) as response:
        assert response.status == 200 and response.url == real_proxy.url + "/dashboard"
        assert b"uPlot" in response.read()
    time.sleep(0.2)
    output = real_proxy.output()
    assert TOKEN not in output
    assert "server connect" not in output  # answered by the proxy itself, nothing went upstream
    assert real_proxy.query("select count(*) as n from requests") in ([], [{"n": 0}])  # own pages are not logged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(endpoint="/stats/summary", name="since", moment=datetime(9999, 12, 31, 23, 30), form="%Y-%m-%dT%H:%M:%S",
         tz="UTC")  # fmt: skip
@example(endpoint="/stats/requests", name="until", moment=datetime(1, 1, 1, 0, 30), form="%Y-%m-%dT%H:%M:%S",
         tz="Etc/GMT+12")  # fmt: skip
@given(
    endpoint=st.sampled_from([e.path for e in ENDPOINTS.values()]),
    name=st.sampled_from(["since", "until"]),
    moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    form=st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S+14:00", "%Y-%m-%dT%H:%M:%S-12:00"]),
    tz=st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12"]),
)
def test_any_date_on_the_calendar_is_an_answer_or_a_400_naming_it(
    open_ui: Harness, endpoint: str, name: str, moment: datetime, form: str, tz: str
) -> None:
    """Dates at the calendar's edges (year 1, 9999) once raised OverflowError (a 500)."""
    text = f"{moment.year:04d}" + moment.strftime(form)[len(str(moment.year)) :]
    flow = open_ui.get(f"{endpoint}?{name}={urllib.parse.quote(text)}&tz={urllib.parse.quote(tz)}")
    assert flow.response.status_code in (200, 400), (endpoint, text, tz)
    if flow.response.status_code == 400:  # naming it (or the range it makes too long a series)
        assert re.match(rf"({name}|bucket): ", body(flow)["error"]), body(flow)["error"]


@pytest.mark.parametrize(
    ("host", "extra", "status"),
    [("localhost:8080", "", 200), ("127.0.0.1:8080", "", 200), ("[::1]:8080", "", 200), ("LOCALHOST.", "", 200),
     ("attacker.example:8080", "", 403), ("localhost.attacker.example", "", 403), ("", "", 403),
     ("stats.team.internal:8080", "stats.team.internal, other", 200)],
)  # fmt: skip
def test_only_expected_hosts_reach_the_pages(db_path: Path, host: str, extra: str, status: int) -> None:
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own name."""
    for path in ("/stats/summary", "/dashboard", "/healthz", "/stats/requests"):
        flow = Harness(db_path, hosts=extra).get(path, headers={"host": host})
        assert flow.response.status_code == status, (path, host)
        if status == 403:
            assert b"llm_usage_allowed_hosts" in flow.response.content and b"openai" not in flow.response.content


def test_health_says_degraded_while_rows_cannot_be_written(db_path: Path) -> None:
    healthy = body(Harness(db_path).get("/healthz"))
    assert healthy == {"ok": True, "database": "ok"}
    failing = Harness(db_path, problem="rows cannot be written: database is locked").get("/healthz")
    assert failing.response.status_code == 200  # the proxy still carries traffic
    assert body(failing) == {"ok": False, "database": "ok", "status": "degraded",
                             "reason": "rows cannot be written: database is locked"}  # fmt: skip
