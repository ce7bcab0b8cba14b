"""``make bench``: what the addon costs on top of bare mitmdump, in one run.

Starts, each in its own process and on 127.0.0.1 only:

- the mock upstream (``bench/mock_server.py`` = ``tests/mock_upstream.py`` standalone);
- ``bare``: ``mitmdump --mode reverse:http://127.0.0.1:<mock>`` with no addon;
- ``bare-stream``: the same with ``--set stream_large_bodies=1``, so it streams response
  bodies as they arrive (by default mitmdump buffers a whole body before sending it on,
  which would make any streaming comparison meaningless);
- ``addon``: ``mitmdump -s addon.py --mode reverse:http://127.0.0.1:9`` with every provider
  re-pointed at the mock, its own database in the work directory.

Both bare ones run with ``--set connection_strategy=lazy``, as the addon sets it for
itself; all three with ``--set flow_detail=0``. Then it measures (see bench/README.md):

1. non-streamed chat completions at 16 and at 1 keep-alive connection(s), bare vs addon,
   interleaved rounds, medians; afterwards the addon must have logged one row per request;
2. time to first byte of a paced stream, bare-stream vs addon;
3. events/s of a fast 10,000-event stream, bare-stream vs addon;
4. 200 concurrent paced streams through the addon: all complete, all logged complete;
5. the addon process's RSS while 1 GiB of SSE streams through it.

and prints a summary with each figure, its target and PASS/MISS. ``--quick`` runs a
shorter version of everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpload as hl
import procs

CHAT_PATH = "/v1/chat/completions"
ADDON_PREFIX = "/openai"


# ------------------------------------------------------------------ options


@dataclass
class Plan:
    rounds: int = 3
    concurrency: int = 16
    warmup_s: float = 1.0
    measure_s: float = 3.0
    c1_warmup_s: float = 0.5
    c1_measure_s: float = 2.0
    ttfb_requests: int = 50
    ttfb_pace_ms: int = 50
    ttfb_events: int = 20
    ttfb_workers: int = 5
    fast_events: int = 10_000
    fast_reps: int = 21
    streams: int = 200
    streams_events: int = 20
    streams_pace_ms: int = 20
    streams_ramp_ms: float = 1.0
    rss_mib: int = 1024
    rss_event_bytes: int = 16_000
    rss_stream_events: int = 500
    rss_concurrency: int = 4
    direct: bool = True

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            rounds=2,
            warmup_s=0.5,
            measure_s=1.5,
            c1_warmup_s=0.3,
            c1_measure_s=1.0,
            ttfb_requests=20,
            fast_reps=3,
            rss_mib=256,
            direct=False,
        )


# ------------------------------------------------------------------ results


@dataclass
class Check:
    name: str
    bare: str
    addon: str
    result: str
    target: str
    ok: bool | None
    """True PASS, False MISS, None information only."""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any) -> None:
        self.checks.append(Check(*args))


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.3f} ms"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


class Bench:
    def __init__(self, plan: Plan, workdir: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        self.report = Report()
        self.services: list[procs.Service] = []
        self.mock: procs.Service
        self.bare: procs.Service
        self.bare_stream: procs.Service
        self.addon: procs.Service
        self.db: Path

    # -------------------------------------------------------------- processes

    def start(self) -> None:
        self.mock = self._keep(procs.start_mock(self.workdir))
        self.bare = self._keep(procs.start_bare(self.workdir, self.mock.port, "bare"))
        self.bare_stream = self._keep(
            procs.start_bare(self.workdir, self.mock.port, "bare-stream", ["--set", "stream_large_bodies=1"])
        )
        addon, self.db = procs.start_addon(self.workdir, self.mock.port)
        self.addon = self._keep(addon)
        say(f"mock upstream  pid {self.mock.pid:<7} http://127.0.0.1:{self.mock.port}")
        say(f"bare           pid {self.bare.pid:<7} http://127.0.0.1:{self.bare.port}  (no addon, lazy)")
        say(
            f"bare-stream    pid {self.bare_stream.pid:<7} http://127.0.0.1:{self.bare_stream.port}"
            "  (no addon, lazy, stream_large_bodies=1)"
        )
        say(f"addon          pid {self.addon.pid:<7} http://127.0.0.1:{self.addon.port}  (db {self.db})")

    def _keep(self, service: procs.Service) -> procs.Service:
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def own_cpu_seconds(self) -> float:
        """CPU used by this run's processes: the services and the load generator."""
        times = os.times()
        return sum(procs.cpu_seconds(s.pid) or 0.0 for s in self.services) + times.user + times.system

    def check_alive(self) -> None:
        for service in self.services:
            if not service.alive():
                raise RuntimeError(f"{service.name} exited:\n{service.output()[-3000:]}")

    def target(self, name: str) -> tuple[procs.Service, str]:
        """Service and path prefix of a target name."""
        return {
            "direct": (self.mock, ""),
            "bare": (self.bare, ""),
            "bare-stream": (self.bare_stream, ""),
            "addon": (self.addon, ADDON_PREFIX),
        }[name]

    # -------------------------------------------------------------- 1: non-streamed

    async def non_streamed(self) -> None:
        p = self.plan
        say(f"\n== 1. Non-streamed POST {CHAT_PATH}: keep-alive, {p.rounds} interleaved rounds, medians")
        start_id = procs.max_id(self.db)
        addon_sent = 0

        async def run(name: str, concurrency: int, warmup: float, measure: float) -> dict[str, float]:
            nonlocal addon_sent
            service, prefix = self.target(name)
            raw = hl.build_request(service.port, prefix + CHAT_PATH, hl.CHAT_BODY)
            cpu0, kids0 = procs.cpu_seconds(service.pid), procs.children_cpu_seconds(service.pid)
            result = await hl.closed_loop(service.port, raw, concurrency, warmup, measure)
            cpu1, kids1 = procs.cpu_seconds(service.pid), procs.children_cpu_seconds(service.pid)
            if name == "addon":
                addon_sent += result.sent_total
            if result.errors:
                raise RuntimeError(f"{name}: {result.errors} failed request(s), first: {result.first_error}")
            cpu_us = (cpu1 - cpu0) / result.sent_total * 1e6 if cpu0 is not None and cpu1 is not None else math.nan
            helper_us = (kids1 - kids0) / result.sent_total * 1e6
            helper = f" + helper process {helper_us:3.0f} us" if name == "addon" else ""
            say(
                f"   {name:<7} c={concurrency:<3} {result.rps:8.0f} req/s   p50 {result.p50_ms:7.3f} ms"
                f"   p99 {result.p99_ms:7.3f} ms   server CPU {cpu_us:5.0f} us/req{helper}"
                f"   (n={result.completed_in_window})"
            )
            return {
                "rps": result.rps,
                "p50": result.p50_ms,
                "p99": result.p99_ms,
                "cpu_us": cpu_us,
                "helper_us": helper_us,
            }

        # Warm both (imports, price tables, connection pools) before anything counts.
        for name in ("bare", "addon"):
            await run(name, p.concurrency, 0.2, 0.5)
        if p.direct:
            say("   (reference: the mock directly, no proxy)")
            direct16 = await run("direct", p.concurrency, 0.3, 1.0)
            direct1 = await run("direct", 1, 0.2, 1.0)
            self.report.data["direct"] = {"c16": direct16, "c1": direct1}
        series: dict[tuple[str, int], list[dict[str, float]]] = {}
        for r in range(p.rounds):
            order = ("bare", "addon") if r % 2 == 0 else ("addon", "bare")
            say(f"   round {r + 1}/{p.rounds}")
            for concurrency, warm, measure in (
                (p.concurrency, p.warmup_s, p.measure_s),
                (1, p.c1_warmup_s, p.c1_measure_s),
            ):
                for name in order:
                    series.setdefault((name, concurrency), []).append(await run(name, concurrency, warm, measure))
            self.check_alive()

        def med(name: str, c: int, key: str) -> float:
            return hl.median([x[key] for x in series[(name, c)]])

        c, data = p.concurrency, {}
        for conc in (c, 1):
            data[f"c{conc}"] = {
                n: {k: med(n, conc, k) for k in ("rps", "p50", "p99", "cpu_us", "helper_us")} for n in ("bare", "addon")
            }
        self.report.data["non_streamed"] = data
        b, a = data[f"c{c}"]["bare"], data[f"c{c}"]["addon"]
        b1, a1 = data["c1"]["bare"], data["c1"]["addon"]
        ratio = a["rps"] / b["rps"]
        say(
            f"   median c={c}: bare {b['rps']:.0f} req/s, addon {a['rps']:.0f} req/s, ratio {ratio:.3f};"
            f" p50 {b['p50']:.3f} vs {a['p50']:.3f} ms"
        )
        say(
            f"   median c=1 : bare p50 {b1['p50']:.3f} ms, addon p50 {a1['p50']:.3f} ms,"
            f" delta {a1['p50'] - b1['p50']:+.3f} ms"
        )
        rep = self.report
        rep.add(f"req/s, c={c}", f"{b['rps']:.0f}", f"{a['rps']:.0f}", f"ratio {ratio:.3f}", ">= 0.90", ratio >= 0.90)
        d1 = a1["p50"] - b1["p50"]
        rep.add(
            "p50 latency, c=1", f"{b1['p50']:.3f} ms", f"{a1['p50']:.3f} ms", f"{d1:+.3f} ms", "<= +0.300 ms", d1 <= 0.3
        )
        dc = a["p50"] - b["p50"]
        rep.add(
            f"p50 latency, c={c}", f"{b['p50']:.3f} ms", f"{a['p50']:.3f} ms", f"{dc:+.3f} ms", "(info: queueing)", None
        )
        rep.add(
            f"p99 latency, c={c}",
            f"{b['p99']:.3f} ms",
            f"{a['p99']:.3f} ms",
            f"{a['p99'] - b['p99']:+.3f} ms",
            "(info)",
            None,
        )
        rep.add(
            "p99 latency, c=1",
            f"{b1['p99']:.3f} ms",
            f"{a1['p99']:.3f} ms",
            f"{a1['p99'] - b1['p99']:+.3f} ms",
            "(info)",
            None,
        )
        dcpu = a["cpu_us"] - b["cpu_us"]
        rep.add(
            f"proxy CPU per request, c={c}",
            f"{b['cpu_us']:.0f} us",
            f"{a['cpu_us']:.0f} us",
            f"{dcpu:+.0f} us; ratio {b['cpu_us'] / a['cpu_us']:.3f}",
            "(info: capacity)",
            None,
        )

        rep.add(
            f"  + accountant process CPU, c={c}",
            "",
            f"{a['helper_us']:.0f} us",
            f"total {a['cpu_us'] + a['helper_us']:.0f} us",
            "(info: another core)",
            None,
        )

        rows = procs.rows_after(self.db, start_id, addon_sent)
        ok_rows = sum(1 for r in rows if r[0] == CHAT_PATH and r[1] == 0 and r[2] == 200 and r[3] == "complete")
        exact = len(rows) == addon_sent == ok_rows
        say(f"   addon rows: {len(rows)} for {addon_sent} requests ({ok_rows} non-streamed, 200, usage complete)")
        rep.add(
            "rows logged = requests (non-streamed)",
            "",
            f"{len(rows)}/{addon_sent}",
            "exact" if exact else f"{ok_rows} ok of {len(rows)}",
            "one row each",
            exact,
        )

    # -------------------------------------------------------------- 2: first byte

    async def first_byte(self) -> None:
        p = self.plan
        say(
            f"\n== 2. Time to first byte: stream of {p.ttfb_events} events paced {p.ttfb_pace_ms} ms,"
            f" {p.ttfb_requests} per side ({p.ttfb_workers} keep-alive connections, staggered)"
        )
        start_id = procs.max_id(self.db)
        rounds = 2
        per_worker = max(1, math.ceil(p.ttfb_requests / (rounds * p.ttfb_workers)))
        samples: dict[str, list[float]] = {"bare-stream": [], "addon": []}
        addon_streams = 0
        period = (p.ttfb_events - 1) * p.ttfb_pace_ms / 1000

        async def batch(name: str) -> None:
            nonlocal addon_streams
            service, prefix = self.target(name)
            raw = hl.build_request(
                service.port,
                prefix + CHAT_PATH,
                hl.STREAM_BODY,
                {"X-Mock-Events": str(p.ttfb_events), "X-Mock-Pace-Ms": str(p.ttfb_pace_ms)},
            )
            warm = hl.build_request(service.port, prefix + CHAT_PATH, hl.STREAM_BODY, {"X-Mock-Events": "2"})

            async def worker(i: int) -> None:
                nonlocal addon_streams
                conn = await hl.Connection(service.port).open()
                try:
                    await conn.request(warm)  # the upstream connection exists before timing starts
                    if name == "addon":
                        addon_streams += 1
                    await asyncio.sleep(i * period / p.ttfb_workers)  # spread first bytes apart
                    for _ in range(per_worker):
                        began = time.perf_counter()
                        response = await conn.request(raw, count_events=True)
                        if name == "addon":
                            addon_streams += 1
                        if (
                            response.status != 200
                            or hl.DONE_MARK not in response.tail
                            or response.first_byte_at is None
                        ):
                            raise RuntimeError(
                                f"{name}: incomplete stream (HTTP {response.status}, tail {response.tail!r})"
                            )
                        samples[name].append(response.first_byte_at - began)
                finally:
                    await conn.close()

            await asyncio.gather(*(worker(i) for i in range(p.ttfb_workers)))

        for r in range(rounds):
            for name in ("bare-stream", "addon") if r % 2 == 0 else ("addon", "bare-stream"):
                await asyncio.wait_for(batch(name), timeout=per_worker * (period + 2) + 30)
        self.check_alive()
        stats = {
            n: {"p50": hl.median(v), "p90": hl.percentile(v, 90), "max": max(v), "n": len(v)}
            for n, v in samples.items()
        }
        self.report.data["first_byte"] = stats
        b, a = stats["bare-stream"], stats["addon"]
        for n in ("bare-stream", "addon"):
            s = stats[n]
            say(
                f"   {n:<12} median {fmt_ms(s['p50'])}   p90 {fmt_ms(s['p90'])}   max {fmt_ms(s['max'])}   (n={s['n']})"
            )
        delta = (a["p50"] - b["p50"]) * 1000
        self.report.add(
            "first byte, median", fmt_ms(b["p50"]), fmt_ms(a["p50"]), f"{delta:+.3f} ms", "<= +1.000 ms", delta <= 1.0
        )
        self.report.add(
            "first byte, p90",
            fmt_ms(b["p90"]),
            fmt_ms(a["p90"]),
            f"{(a['p90'] - b['p90']) * 1000:+.3f} ms",
            "(info)",
            None,
        )
        self.check_stream_rows(start_id, addon_streams, "first byte")

    def check_stream_rows(self, start_id: int, streams: int, part: str) -> None:
        """Every stream of a part logged once, streaming, with complete usage."""
        rows = procs.rows_after(self.db, start_id, streams)
        complete = sum(1 for r in rows if r[1] == 1 and r[3] == "complete")
        say(f"   addon rows: {len(rows)} for {streams} streams ({complete} streaming, usage complete)")
        if not (len(rows) == complete == streams):
            self.report.add(
                f"rows logged = streams ({part})",
                "",
                f"{len(rows)}/{streams}",
                f"{complete} complete",
                "one row each",
                False,
            )

    # -------------------------------------------------------------- 3: events/s

    async def events_per_second(self) -> None:
        p = self.plan
        say(f"\n== 3. Events/s of a fast {p.fast_events:,}-event stream (no pacing), {p.fast_reps} alternating reps")
        start_id = procs.max_id(self.db)
        addon_streams = 0

        async def one(name: str, conn: hl.Connection, body: bytes, events: int) -> tuple[float, int, float]:
            """(events/s, events, proxy CPU microseconds per event) of one stream."""
            service, prefix = self.target(name)
            raw = hl.build_request(service.port, prefix + CHAT_PATH, body, {"X-Mock-Events": str(events)})
            cpu0 = procs.cpu_seconds(service.pid) or 0.0
            began = time.perf_counter()
            response = await conn.request(raw, count_events=True)
            elapsed = time.perf_counter() - began
            cpu = (procs.cpu_seconds(service.pid) or 0.0) - cpu0
            if response.status != 200 or hl.DONE_MARK not in response.tail:
                raise RuntimeError(f"{name}: incomplete stream (HTTP {response.status}, tail {response.tail!r})")
            return response.events / elapsed, response.events, cpu / response.events * 1e6

        async def series(body: bytes, label: str) -> dict[str, float]:
            nonlocal addon_streams
            conns = {n: await hl.Connection(self.target(n)[0].port).open() for n in ("bare-stream", "addon")}
            rates: dict[str, list[float]] = {"bare-stream": [], "addon": []}
            cpus: dict[str, list[float]] = {"bare-stream": [], "addon": []}
            counts: dict[str, int] = {}
            try:
                for n in conns:  # warm-up
                    await one(n, conns[n], body, 1000)
                addon_streams += 1
                for r in range(p.fast_reps):
                    for n in ("bare-stream", "addon") if r % 2 == 0 else ("addon", "bare-stream"):
                        rate, counts[n], cpu_us = await asyncio.wait_for(one(n, conns[n], body, p.fast_events), 60)
                        rates[n].append(rate)
                        cpus[n].append(cpu_us)
                    addon_streams += 1
            finally:
                for c in conns.values():
                    await c.close()
            med = {n: hl.median(v) for n, v in rates.items()}
            # CPU time is counted in 10 ms ticks: averaged over every rep, not a median of each.
            cpu = {n: sum(v) / len(v) for n, v in cpus.items()}
            say(f"   {label}: ratio addon/bare {med['addon'] / med['bare-stream']:.3f}")
            for n in rates:
                each = ", ".join(f"{x:,.0f}" for x in rates[n])
                say(
                    f"      {n:<12} median {med[n]:9,.0f} ev/s, proxy CPU {cpu[n]:5.2f} us/event"
                    f"   (reps: {each}; {counts[n]:,} events each)"
                )
            return {**med, "cpu_us_bare-stream": cpu["bare-stream"], "cpu_us_addon": cpu["addon"]}

        injected = await series(hl.STREAM_BODY, "client without include_usage (proxy injects + filters)")
        body = json.loads(hl.STREAM_BODY)
        body["stream_options"] = {"include_usage": True}
        asked = await series(
            json.dumps(body, separators=(",", ":")).encode(), "client asks include_usage itself       "
        )
        self.check_alive()
        self.report.data["events_per_second"] = {"injected": injected, "client_asked": asked}
        ratio = injected["addon"] / injected["bare-stream"]
        self.report.add(
            "events/s, 10k-event stream",
            f"{injected['bare-stream']:,.0f}",
            f"{injected['addon']:,.0f}",
            f"ratio {ratio:.3f}",
            ">= 0.95",
            ratio >= 0.95,
        )
        self.report.add(
            "  proxy CPU per event",
            f"{injected['cpu_us_bare-stream']:.2f} us",
            f"{injected['cpu_us_addon']:.2f} us",
            f"ratio {injected['cpu_us_bare-stream'] / injected['cpu_us_addon']:.3f}",
            "(info: capacity)",
            None,
        )
        ratio2 = asked["addon"] / asked["bare-stream"]
        self.report.add(
            "  same, client sets include_usage",
            f"{asked['bare-stream']:,.0f}",
            f"{asked['addon']:,.0f}",
            f"ratio {ratio2:.3f}",
            "(info)",
            None,
        )
        self.check_stream_rows(start_id, addon_streams, "events/s")

    # -------------------------------------------------------------- 4: many streams

    async def concurrent_streams(self) -> None:
        p = self.plan
        n = p.streams
        say(
            f"\n== 4. {n} concurrent streams ({p.streams_events} events paced {p.streams_pace_ms} ms),"
            " each on its own new connection"
        )
        headers = {"X-Mock-Events": str(p.streams_events), "X-Mock-Pace-Ms": str(p.streams_pace_ms)}
        ideal = p.streams_events * p.streams_pace_ms / 1000
        # What the client must get: the upstream's own stream for this request (no
        # include_usage asked, so none of the proxy's injection may show), byte for byte.
        ref_conn = await hl.Connection(self.mock.port).open()
        try:
            ref = await ref_conn.request(
                hl.build_request(self.mock.port, CHAT_PATH, hl.STREAM_BODY, {"X-Mock-Events": str(p.streams_events)}),
                keep_body=True,
            )
        finally:
            await ref_conn.close()
        expected = ref.body or b""

        async def burst(name: str) -> dict[str, Any]:
            service, prefix = self.target(name)
            raw = hl.build_request(service.port, prefix + CHAT_PATH, hl.STREAM_BODY, headers)
            flight = {"now": 0, "peak": 0}

            async def one(i: int) -> tuple[bool, float, float, str]:
                await asyncio.sleep(i * p.streams_ramp_ms / 1000)
                began = time.perf_counter()
                conn = hl.Connection(service.port)
                try:
                    await conn.open()
                    sent = time.perf_counter()
                    flight["now"] += 1
                    flight["peak"] = max(flight["peak"], flight["now"])
                    response = await conn.request(raw, keep_body=True)
                except (OSError, asyncio.IncompleteReadError, hl.ProtocolError, ValueError) as exc:
                    return False, math.nan, math.nan, f"{type(exc).__name__}: {exc}"
                finally:
                    flight["now"] -= 1
                    await conn.close()
                done = response.status == 200 and response.body == expected
                why = (
                    "" if done else f"HTTP {response.status}, {response.body_bytes} bytes, tail {response.tail[-30:]!r}"
                )
                return done, time.perf_counter() - began, (response.first_byte_at or math.nan) - sent, why

            began = time.perf_counter()
            results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=120)
            wall = time.perf_counter() - began
            good = [r for r in results if r[0]]
            out: dict[str, Any] = {
                "ok": len(good),
                "wall_s": wall,
                "peak_in_flight": flight["peak"],
                "p50_s": hl.median([r[1] for r in good]),
                "max_s": max((r[1] for r in good), default=math.nan),
                "ttfb_p50_s": hl.median([r[2] for r in good]),
                "ttfb_max_s": max((r[2] for r in good), default=math.nan),
                "failure": next((r[3] for r in results if not r[0]), None),
            }
            say(
                f"   {name:<12} {out['ok']}/{n} complete and byte-identical to the upstream's stream,"
                f" {out['peak_in_flight']} in flight at the peak, {wall:.2f} s wall\n"
                f"                per stream p50 {fmt_ms(out['p50_s'])}, max {fmt_ms(out['max_s'])}"
                f" (paced minimum {ideal * 1000:.0f} ms); first byte p50 {fmt_ms(out['ttfb_p50_s'])},"
                f" max {fmt_ms(out['ttfb_max_s'])}"
            )
            if out["failure"]:
                say(f"   first failure: {out['failure']}")
            return out

        bare = await burst("bare-stream")
        await asyncio.sleep(0.5)
        start_id = procs.max_id(self.db)
        addon = await burst("addon")
        self.check_alive()
        rows = procs.rows_after(self.db, start_id, n, timeout=30)
        complete = sum(1 for r in rows if r[1] == 1 and r[2] == 200 and r[3] == "complete")
        say(f"   addon rows: {len(rows)} ({complete} streaming, 200, usage complete)")
        self.report.data["concurrent_streams"] = {
            "bare-stream": bare,
            "addon": addon,
            "rows": len(rows),
            "rows_complete": complete,
        }
        ok = addon["ok"]
        self.report.add(
            f"{n} concurrent streams complete",
            f"{bare['ok']}/{n}",
            f"{ok}/{n}",
            f"{addon['wall_s']:.2f} s wall",
            f"{n}/{n} identical",
            ok == n,
        )
        self.report.add(
            "  their per-stream time, p50",
            fmt_ms(bare["p50_s"]),
            fmt_ms(addon["p50_s"]),
            f"{(addon['p50_s'] - bare['p50_s']) * 1000:+.1f} ms",
            "(info)",
            None,
        )
        self.report.add(
            f"{n} concurrent streams logged",
            "",
            f"{complete}/{len(rows)} rows",
            "complete" if complete == len(rows) == n else "MISSING/EXTRA",
            f"{n} rows, complete",
            complete == len(rows) == n,
        )

    # -------------------------------------------------------------- 5: memory

    async def memory(self) -> None:
        p = self.plan
        total_target = p.rss_mib * 1024 * 1024
        say(
            f"\n== 5. Addon RSS while {p.rss_mib} MiB of SSE streams through it"
            f" ({p.rss_stream_events} events of ~{p.rss_event_bytes:,} bytes per stream,"
            f" {p.rss_concurrency} at a time)"
        )
        service, prefix = self.target("addon")
        headers = {"X-Mock-Events": str(p.rss_stream_events)}
        if p.rss_event_bytes:
            headers["X-Mock-Event-Bytes"] = str(p.rss_event_bytes)
        raw = hl.build_request(service.port, prefix + CHAT_PATH, hl.STREAM_BODY, headers)
        start_id = procs.max_id(self.db)
        streams = 0
        state = {"bytes": 0, "peak": 0}

        async def pump(budget: int) -> None:
            nonlocal streams
            target_bytes = state["bytes"] + budget

            async def worker() -> None:
                nonlocal streams
                conn = await hl.Connection(service.port).open()
                try:
                    while state["bytes"] < target_bytes:
                        streams += 1
                        response = await conn.request(raw)
                        if response.status != 200 or hl.DONE_MARK not in response.tail:
                            raise RuntimeError(f"incomplete stream (HTTP {response.status}, tail {response.tail!r})")
                        state["bytes"] += response.body_bytes
                finally:
                    await conn.close()

            await asyncio.gather(*(worker() for _ in range(p.rss_concurrency)))

        async def sampler(stop: asyncio.Event) -> None:
            while not stop.is_set():
                rss = procs.family_rss_kb(service.pid)
                state["peak"] = max(state["peak"], rss)
                try:
                    await asyncio.wait_for(stop.wait(), 0.05)
                except TimeoutError:
                    pass

        # Warm-up: 1/16 of the volume, so buffers and caches have reached their working size.
        await asyncio.wait_for(pump(total_target // 16), timeout=300)
        await asyncio.sleep(1.0)
        before = procs.family_rss_kb(service.pid)
        helper_before = sum(procs.rss_kb(kid) or 0 for kid in procs.children(service.pid))
        state["bytes"], state["peak"] = 0, before
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler(stop))
        began = time.perf_counter()
        cpu0 = procs.cpu_seconds(service.pid) or 0.0
        try:
            await asyncio.wait_for(pump(total_target), timeout=600)
        finally:
            stop.set()
            await sampling
        elapsed = time.perf_counter() - began
        cpu = (procs.cpu_seconds(service.pid) or 0.0) - cpu0
        await asyncio.sleep(1.0)
        after = procs.family_rss_kb(service.pid)
        moved = state["bytes"]
        peak = state["peak"]
        growth = (peak - before) / 1024
        say(
            f"   {moved / 2**20:,.0f} MiB in {elapsed:.1f} s ({moved / 2**20 / elapsed:,.0f} MiB/s,"
            f" addon CPU {cpu:.1f} s); {streams} streams"
        )
        say(
            f"   RSS (proxy + accountant process, {helper_before / 1024:.1f} MiB of it the accountant)"
            f" before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, after {after / 1024:.1f} MiB:"
            f" growth to peak {growth:+.1f} MiB, retained {(after - before) / 1024:+.1f} MiB"
        )
        rows = procs.rows_after(self.db, start_id, streams, timeout=30)
        complete = sum(1 for r in rows if r[1] == 1 and r[3] == "complete")
        say(f"   addon rows: {len(rows)} for {streams} streams ({complete} usage complete)")
        self.report.data["memory"] = {
            "before_kb": before,
            "peak_kb": peak,
            "after_kb": after,
            "bytes": moved,
            "seconds": elapsed,
            "streams": streams,
        }
        self.report.add(
            f"RSS growth, {moved / 2**30:.2f} GiB SSE",
            f"before {before / 1024:.1f} MiB",
            f"peak {peak / 1024:.1f} / after {after / 1024:.1f} MiB",
            f"{growth:+.1f} MiB",
            "< 20 MiB",
            growth < 20,
        )
        if not (len(rows) == complete == streams):
            self.report.add(
                "rows logged = streams (RSS)",
                "",
                f"{len(rows)}/{streams}",
                f"{complete} complete",
                "one row each",
                False,
            )


# ------------------------------------------------------------------ summary


def print_summary(report: Report) -> bool:
    headers = ("figure", "bare mitmdump", "addon", "result", "target", "")
    rows = [
        (c.name, c.bare, c.addon, c.result, c.target, "" if c.ok is None else ("PASS" if c.ok else "MISS"))
        for c in report.checks
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    say("\n== Summary")
    say("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    say(line)
    for r in rows:
        say("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    misses = [c.name for c in report.checks if c.ok is False]
    say(line)
    say(
        f"{sum(1 for c in report.checks if c.ok)} PASS, {len(misses)} MISS"
        + (f": {', '.join(misses)}" if misses else "")
    )
    return not misses


PHASES: dict[str, Callable[[Bench], Coroutine[Any, Any, None]]] = {
    "1": Bench.non_streamed,
    "2": Bench.first_byte,
    "3": Bench.events_per_second,
    "4": Bench.concurrent_streams,
    "5": Bench.memory,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare mitmdump vs mitmdump + the llm-usage addon, on a local mock")
    parser.add_argument("--quick", action="store_true", help="shorter run (about a third of the time)")
    parser.add_argument("--phases", default="12345", help="which measurements to run, e.g. 13 (default: all)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the non-streamed measurement")
    parser.add_argument("--duration", type=float, help="seconds measured per non-streamed run at --concurrency")
    parser.add_argument("--concurrency", type=int, help="connections of the throughput measurement (16)")
    parser.add_argument("--rss-mib", type=int, help="MiB streamed in the RSS measurement (1024)")
    parser.add_argument(
        "--rss-event-bytes",
        type=int,
        help="bytes per event in the RSS measurement (16000; 0 = the mock's ~200-byte events, slow)",
    )
    parser.add_argument("--no-direct", action="store_true", help="skip the direct-to-mock reference figures")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    plan = Plan.quick() if args.quick else Plan()
    for opt, attr in (
        ("rounds", "rounds"),
        ("duration", "measure_s"),
        ("concurrency", "concurrency"),
        ("rss_mib", "rss_mib"),
        ("rss_event_bytes", "rss_event_bytes"),
    ):
        if getattr(args, opt) is not None:
            setattr(plan, attr, getattr(args, opt))
    if args.no_direct:
        plan.direct = False

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="llm-usage-bench-"))
    bench = Bench(plan, workdir)
    began = time.monotonic()
    say(
        f"llm-usage bench: {'quick' if args.quick else 'full'} run on {os.cpu_count()} CPU(s),"
        f" load average {loadavg()}; work directory {workdir}"
    )
    ok = False
    status = 2
    try:
        bench.start()
        for key in args.phases:
            if key in PHASES:
                busy0, own0, t0 = procs.machine_busy_seconds(), bench.own_cpu_seconds(), time.monotonic()
                asyncio.run(PHASES[key](bench))
                busy1, own1, t1 = procs.machine_busy_seconds(), bench.own_cpu_seconds(), time.monotonic()
                if busy0 is not None and busy1 is not None:
                    other = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
                    bench.report.data.setdefault("other_cpu", {})[key] = other
                    note = "  <- figures of this part are noisy" if other > 0.25 else ""
                    say(f"   ({t1 - t0:.0f} s; other processes on this machine used {other:.2f} CPUs meanwhile){note}")
        ok = print_summary(bench.report)
        status = 1 if args.strict and not ok else 0
        say(
            f"\nfinished in {time.monotonic() - began:.0f} s; load average now {loadavg()}"
            " (other work on this machine makes the figures noisier; see bench/README.md)"
        )
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        bench.stop()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            payload = {"checks": [c.__dict__ for c in bench.report.checks], "data": bench.report.data}
            args.json.write_text(json.dumps(payload, indent=2, default=str))
        if args.keep:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
