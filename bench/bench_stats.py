"""Time every stats endpoint and the dashboard's first full render on a 1,000,000-row database.

    .venv/bin/python bench/bench_stats.py [--db bench/out/usage-1m.db] [--repeat 25] [--renders 7]

The database is generated first (bench/gen_db.py) when it is missing. The endpoints are
timed over HTTP through a real ``mitmdump -s addon.py`` (what a user's browser pays), median
of ``--repeat`` calls after a warm-up; the dashboard in headless Chromium (/usr/bin/chromium),
from navigation start until every panel has its data, in a fresh browser context each time.
Targets: each endpoint's median under 100 ms; the dashboard ready in under 1.5 s.
"""

from __future__ import annotations

import argparse
import http.client
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gen_db import generate  # noqa: E402
from tests.support.harness import MITMDUMP, free_port, wait_for_port  # noqa: E402

ENDPOINT_TARGET_MS = 100.0
DASHBOARD_TARGET_MS = 1500.0
ENDPOINTS = [
    "/stats/summary",
    "/stats/summary?days=30&tz=Europe/Berlin",
    "/stats/summary?days=7&tz=America/New_York&provider=anthropic",
    "/stats/by-model",
    "/stats/by-model?days=30&tz=Europe/Berlin",
    "/stats/by-model?provider=openai",
    "/stats/by-client",
    "/stats/by-provider?days=90",
    "/stats/requests",
    "/stats/requests?days=30&tz=Europe/Berlin&limit=50",
    "/stats/requests?provider=openai&offset=1000",
    "/stats/requests?status=error&days=365",
    "/stats/requests?model=gpt-5&client=Codex%20CLI",
    "/stats/timeseries",
    "/stats/timeseries?days=30&tz=America/New_York",
    "/stats/timeseries?days=1&bucket=hour&tz=Europe/Berlin",
    "/stats/timeseries?days=7&bucket=hour&tz=America/New_York",
    "/stats/timeseries?days=365&tz=Europe/Berlin",
    "/stats/timeseries?days=365&tz=Asia/Kolkata",
    "/stats/by-session",
    "/stats/by-session?days=365&tz=Europe/Berlin",
    "/stats/by-session?days=7&project=webshop",
    "/stats/by-project?days=30",
    "/stats/by-project",
    "/stats/by-key?days=90",
    "/stats/summary?days=30&project=webshop",
    "/stats/summary?days=30&key=key-3fa9c1d2",
    "/stats/requests?days=30&session=FIRST_SESSION",
    "/stats/timeseries?days=30&project=blog",
    "/stats/by-model?days=30&project=webshop",
    "/stats/timeseries?days=365&bucket=week&tz=Europe/Berlin",
    "/stats/timeseries?bucket=month&tz=Europe/Berlin",
    "/metrics",
    "/healthz",
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def time_endpoints(port: int, repeat: int, session: str) -> list[tuple[str, float, float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    results = []
    for path in (p.replace("FIRST_SESSION", session) for p in ENDPOINTS):
        samples = []
        for i in range(repeat + 2):
            began = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - began) * 1000
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}")
            if i >= 2:  # two warm-up calls
                samples.append(elapsed)
        results.append((path, statistics.median(samples), max(samples)))
    conn.close()
    return results


def time_dashboard(url: str, renders: int, fragment: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(renders + 1):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(f"{url}/dashboard{fragment}")
            page.wait_for_function("() => document.documentElement.dataset.ready === 'true'", timeout=30_000)
            times.append(float(page.evaluate("() => Number(document.documentElement.dataset.readyMs)")))
            context.close()
        browser.close()
    return times[1:]  # the first launch warms the browser's own caches


def start_proxy(db: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real mitmdump with the addon on the database (its own, not tests.harness.Proxy: that one
    sets llm_usage_db itself, and a second --set of the same option is not honoured)."""
    port = free_port()
    cmd = [str(MITMDUMP), "-s", str(ROOT / "addon.py"), "--mode", "reverse:http://127.0.0.1:9", "--listen-host",
           "127.0.0.1", "-p", str(port), "--set", f"llm_usage_db={db}", "--set", "flow_detail=0"]  # fmt: skip
    log = (workdir / "mitmdump.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc=proc)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=ROOT / "bench" / "out" / "usage-1m.db")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate when --db is missing")
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--renders", type=int, default=7)
    args = parser.parse_args()
    if not args.db.exists():
        print(f"generating {args.rows:,} rows into {args.db} ...")
        generate(args.db, args.rows, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, port = start_proxy(args.db.resolve(), workdir)
        url = f"http://127.0.0.1:{port}"
        try:
            # timeout: a proxy that finds the rollups built by an older release rebuilds them first
            with sqlite3.connect(f"file:{args.db.resolve()}?mode=ro", uri=True, timeout=300) as conn:
                rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
                latest = "SELECT session_id FROM requests WHERE session_id IS NOT NULL ORDER BY timestamp DESC LIMIT 1"
                session = (conn.execute(latest).fetchone() or ("none",))[0]
            print(f"llm-usage stats bench: {rows:,} rows in {args.db}")
            target = f"target < {ENDPOINT_TARGET_MS:.0f} ms"
            print(f"\nEndpoints over HTTP through mitmdump, median of {args.repeat} ({target})")
            misses = 0
            for path, median, worst in time_endpoints(port, args.repeat, session):
                ok = median < ENDPOINT_TARGET_MS
                misses += not ok
                print(f"  {'ok  ' if ok else 'MISS'} {median:7.1f} ms  (max {worst:6.1f})  {path}")
            if Path("/usr/bin/chromium").exists():
                for label, fragment in (("30 days", ""), ("all time", "#days=all")):
                    renders = time_dashboard(url, args.renders, fragment)
                    median = statistics.median(renders)
                    ok = median < DASHBOARD_TARGET_MS
                    misses += not ok
                    print(
                        f"\nDashboard first full render ({label}), median of {len(renders)} cold contexts: "
                        f"{median:.0f} ms  {'ok' if ok else 'MISS'} (target < {DASHBOARD_TARGET_MS:.0f} ms; "
                        f"all: {', '.join(f'{t:.0f}' for t in renders)})"
                    )
            else:
                print("\nDashboard: skipped, /usr/bin/chromium is missing")
            print(f"\n{'all targets met' if not misses else f'{misses} target(s) missed'}")
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
