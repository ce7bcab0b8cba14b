"""``make bench``: what the addon costs on top of bare mitmdump, as a user feels it.

Starts, each its own process on 127.0.0.1: the tests' mock upstream; ``bare`` (mitmdump
in reverse mode to the mock, no addon); ``bare-stream`` (the same, forwarding bodies as
they arrive, as the addon does for streams); ``addon`` (``mitmdump -s addon.py`` exactly as
``make run`` starts it, every provider re-pointed at the mock). Load comes from ``wrk``;
a small Python client reads streams only where their bytes or first byte must be seen.
Bare and addon take turns round by round, and medians are reported (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.harness import free_port, mitmdump_command, providers_file, wait_for_port  # noqa: E402

CHAT = "/v1/chat/completions"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
STREAM_BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}],"stream":true}'
WRK_REPORT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%%d,"seconds":%%f,"bytes":%%d,"p50_ms":%%f,"errors":%%d}\\n',
    summary.requests, summary.duration / 1e6, summary.bytes, latency:percentile(50) / 1e3,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


class Service:
    """A child process listening on a local port; its output goes to a log file."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.name, self.port = name, port
        self.log = (workdir / f"{name}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the mock is tests.support.mock_upstream
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for_port(port, timeout=30, proc=self.proc)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def start(workdir: Path) -> dict[str, Service]:
    port = free_port()
    mock = Service("mock", [sys.executable, "-m", "tests.support.mock_upstream", "--port", str(port)], port, workdir)
    upstream = f"http://127.0.0.1:{mock.port}"
    bare = ["--set", "flow_detail=0", "--set", "connection_strategy=lazy"]  # lazy: as the addon sets it for itself
    services = {"mock": mock}
    for name, extra in (("bare", bare), ("bare-stream", [*bare, "--set", "stream_large_bodies=1"])):
        port = free_port()
        services[name] = Service(
            name, mitmdump_command(port, *extra, addon=False, mode=f"reverse:{upstream}"), port, workdir
        )
    port = free_port()
    db, providers = workdir / "usage.db", providers_file(workdir, upstream)
    args = ["--set", "flow_detail=0", "--set", f"llm_usage_db={db}", "--set", f"llm_usage_providers={providers}"]
    services["addon"] = Service("addon", mitmdump_command(port, *args), port, workdir)
    return services


def url(services: dict[str, Service], name: str, path: str) -> str:
    """``name``'s URL for an upstream ``path``: the addon routes ``/openai/...`` to the mock."""
    prefix = "/openai" if name == "addon" else ""
    return f"http://127.0.0.1:{services[name].port}{prefix}{path}"


def wrk(target: str, connections: int, seconds: int, body: bytes, headers: dict[str, str] | None = None) -> dict:
    """One wrk run (one thread): requests, seconds, bytes, p50_ms, errors."""
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_REPORT % (body.decode(), lines))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), target]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    script.unlink()
    return json.loads(output.split("RESULT ", 1)[1])


def rounds(n: int, run) -> dict[str, list]:  # type: ignore[no-untyped-def]
    """``run(name)`` for bare and addon, alternating who goes first, n times."""
    results: dict[str, list] = {}
    for i in range(n):
        for name in ("bare", "addon") if i % 2 == 0 else ("addon", "bare"):
            results.setdefault(name, []).append(run(name))
    return results


def compared(runs: dict[str, list[float]], how) -> tuple[float, float, float, str]:  # type: ignore[no-untyped-def]
    """Median bare, median addon, the median over rounds of ``how(addon, bare)``, and the
    middle half of those per-round values: each round's two runs were back to back, so a
    drift in the machine's speed (which moves absolute figures by a quarter here) hits
    both alike, and the spread shows how far a single round can be trusted."""
    per_round = sorted(how(a, b) for a, b in zip(runs["addon"], runs["bare"], strict=True))
    quarter = len(per_round) // 4
    spread = f"{per_round[quarter]:.2f}..{per_round[-1 - quarter]:.2f}"
    return statistics.median(runs["bare"]), statistics.median(runs["addon"]), statistics.median(per_round), spread


# ------------------------------------------------------------------ a client that reads bytes


async def fetch(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, bytes]:
    """(seconds to the first body byte, the de-chunked body) of one request on a new connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
    ).encode() + body
    began = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    first = await reader.read(1)
    ttfb = time.perf_counter() - began
    raw = first + await reader.read()
    writer.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    body_out, rest = b"", raw
    while rest:  # chunked transfer encoding
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        body_out, rest = body_out + rest[:size], rest[size + 2 :]
        if size == 0:
            break
    return ttfb, body_out


# ------------------------------------------------------------------ the figures


class Bench:
    def __init__(self, services: dict[str, Service], workdir: Path, quick: bool) -> None:
        self.s = services
        self.db = workdir / "usage.db"
        self.quick = quick
        self.n = 3 if quick else 12  # rounds: this many paired runs per figure
        self.seconds = 2
        self.results: list[tuple[str, str, str, str, str, bool | None]] = []
        self.answered = 0
        self.cut = 0  # requests wrk may have left in flight when it stopped (at most one per connection)

    def addon_wrk(self, connections: int, seconds: int, body: bytes, headers: dict[str, str] | None = None) -> dict:
        result = wrk(url(self.s, "addon", CHAT), connections, seconds, body, headers)
        self.answered += result["requests"]
        self.cut += connections
        return result

    def add(self, figure: str, bare: str, addon: str, result: str, target: str, ok: bool | None) -> None:
        self.results.append((figure, bare, addon, result, target, ok))
        print(f"  {figure}: bare {bare}, addon {addon} -> {result} ({target}: {_verdict(ok)})", flush=True)

    def non_streamed(self) -> None:
        wrk(url(self.s, "bare", CHAT), 16, 1, BODY)  # warm-up
        self.addon_wrk(16, 1, BODY)
        for connections, figure in ((16, "throughput, 16 connections"), (1, "latency, 1 connection")):
            cpu_before = {n: self.s[n].cpu_seconds() for n in ("bare", "addon")}

            def run(name: str, connections: int = connections) -> dict:
                if name == "addon":
                    result = self.addon_wrk(connections, self.seconds, BODY)
                else:
                    result = wrk(url(self.s, name, CHAT), connections, self.seconds, BODY)
                assert result["errors"] == 0, result
                return result

            runs = rounds(self.n, run)
            if connections == 16:
                rps = {n: [r["requests"] / r["seconds"] for r in runs[n]] for n in runs}
                bare, addon, ratio, spread = compared(rps, lambda a, b: a / b)
                self.add(figure, f"{bare:,.0f} req/s", f"{addon:,.0f} req/s", f"{ratio:.2f} ({spread})", ">= 0.85",
                         ratio >= 0.85)  # fmt: skip
                served = {n: sum(r["requests"] for r in runs[n]) for n in runs}
                cpu = {n: (self.s[n].cpu_seconds() - cpu_before[n]) / served[n] * 1e6 for n in runs}
                self.add("proxy CPU per request", f"{cpu['bare']:.0f} us", f"{cpu['addon']:.0f} us",
                         f"+{cpu['addon'] - cpu['bare']:.0f} us", "info", None)  # fmt: skip
            else:
                p50 = {n: [r["p50_ms"] for r in runs[n]] for n in runs}
                bare, addon, extra, spread = compared(p50, lambda a, b: a - b)
                self.add(figure + ", p50", f"{bare:.2f} ms", f"{addon:.2f} ms", f"{extra:+.2f} ms ({spread})",
                         "within +0.3 ms", extra <= 0.3)  # fmt: skip

    def large_bodies(self) -> None:
        """Peak RSS over its level before, while three 100 MB streamed chat requests (a
        coding tool's worst) go through at once: mitmproxy holds each body while it reads
        it in and sends it on; the addon reads the keys it needs without parsing the body
        whole, and copies it once where it adds ``include_usage``."""
        import httpx

        size = (20 if self.quick else 100) << 20
        text = "x" * size
        body = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]})

        def growth(name: str) -> float:
            service = self.s[name]
            before = peak = service.rss_mib()
            stop = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop.wait(0.02):
                    peak = max(peak, service.rss_mib())

            sampler = threading.Thread(target=sample)
            sampler.start()
            target = url(self.s, name, CHAT)
            headers = {"content-type": "application/json"}

            def one(_: int) -> int:
                return httpx.post(target, content=body, headers=headers, timeout=300).status_code

            try:
                with ThreadPoolExecutor(3) as pool:
                    statuses = list(pool.map(one, range(3)))
            finally:
                stop.set()
                sampler.join()
            assert statuses == [200, 200, 200], statuses
            return peak - before

        bare, addon = growth("bare"), growth("addon")
        self.answered += 3
        extra = addon - bare
        self.add(f"RSS peak, 3 x {size >> 20} MB request bodies at once", f"+{bare:.0f} MiB", f"+{addon:.0f} MiB",
                 f"{extra:+.0f} MiB over bare", "< one copy each", extra < 3 * size / 2**20)  # fmt: skip

    def rows(self) -> None:
        """Rows: one per request the addon answered. wrk counts the answers it read, and
        may stop with one request in flight per connection, which the proxy logs too (a
        stream cut that way is a partial row)."""
        time.sleep(1.0)
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        total, complete = db.execute("select count(*), sum(usage_status = 'complete') from requests").fetchone()
        ok = self.answered <= total <= self.answered + self.cut and total - complete <= self.cut
        self.add("rows logged", "", f"{total:,} ({complete:,} complete)",
                 f"{self.answered:,} answered, {self.cut} cut", "one per request", ok)  # fmt: skip

    def first_byte(self) -> None:
        headers = {"X-Mock-Pace-Ms": "50", "X-Mock-Events": "20"}
        count = 10

        def run(name: str) -> float:
            service = "bare-stream" if name == "bare" else "addon"
            path = ("/openai" if name == "addon" else "") + CHAT
            port = self.s[service].port
            asyncio.run(fetch(port, path, STREAM_BODY, headers))  # warm-up
            self.answered += (count + 1) if name == "addon" else 0
            return statistics.median(asyncio.run(fetch(port, path, STREAM_BODY, headers))[0] for _ in range(count))

        bare, addon, extra, spread = compared(rounds(self.n, run), lambda a, b: (a - b) * 1000)
        self.add("first byte of a paced stream", f"{bare * 1000:.2f} ms", f"{addon * 1000:.2f} ms",
                 f"{extra:+.2f} ms ({spread})", "within +1 ms", extra <= 1.0)  # fmt: skip

    def events_per_second(self) -> None:
        events = 10_000
        headers = {"X-Mock-Events": str(events)}

        def run(name: str) -> float:
            """Streams one after the other on one connection; events / the median stream's
            time from request to last byte (wrk's latency of a request)."""
            if name == "addon":
                result = self.addon_wrk(1, self.seconds, STREAM_BODY, headers)
            else:
                result = wrk(url(self.s, "bare-stream", CHAT), 1, self.seconds, STREAM_BODY, headers)
            assert result["errors"] == 0 and result["requests"] > 0, result
            return events / (result["p50_ms"] / 1000)

        bare, addon, ratio, spread = compared(rounds(self.n, run), lambda a, b: a / b)
        self.add("events/s, 10,000-event stream", f"{bare:,.0f}", f"{addon:,.0f}", f"{ratio:.2f} ({spread})",
                 ">= 0.90", ratio >= 0.90)  # fmt: skip

    def concurrent_streams(self) -> None:
        """200 paced streams at once, each byte-identical to what the mock sends a client
        that did not ask for usage (so the injected usage is invisible)."""
        headers = {"X-Mock-Pace-Ms": "20", "X-Mock-Events": "20"}

        async def burst() -> list[bytes]:
            async def one(i: int) -> bytes:
                await asyncio.sleep(i / 1000)  # 1 ms apart: the listen backlog is 100
                return (await fetch(self.s["addon"].port, "/openai" + CHAT, STREAM_BODY, headers))[1]

            return await asyncio.gather(*(one(i) for i in range(200)))

        expected = asyncio.run(fetch(self.s["mock"].port, CHAT, STREAM_BODY, headers))[1]
        bodies = asyncio.run(burst())
        self.answered += 200
        same = sum(body == expected for body in bodies)
        self.add("200 concurrent paced streams", "", f"{same}/200 byte-identical", "", "all", same == 200)

    def memory(self) -> None:
        """RSS of the addon while 1 GiB of SSE (16 kB events, 8 MB per stream) streams through."""
        target_bytes = (256 if self.quick else 1024) << 20
        headers = {"X-Mock-Events": "500", "X-Mock-Event-Bytes": "16000"}
        addon = self.s["addon"]
        self.addon_wrk(4, 1, STREAM_BODY, headers)  # warm-up
        before, peak, streamed = addon.rss_mib(), 0.0, 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.05):
                peak = max(peak, addon.rss_mib())

        sampler = threading.Thread(target=sample)
        sampler.start()
        while streamed < target_bytes:
            streamed += self.addon_wrk(4, 5, STREAM_BODY, headers)["bytes"]
        stop.set()
        sampler.join()
        growth = peak - before
        self.add(f"RSS growth over {streamed / 2**30:.2f} GiB streamed", "", f"{before:.0f} -> {peak:.0f} MiB",
                 f"+{growth:.1f} MiB", "< 20 MiB", growth < 20)  # fmt: skip


def _verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "MISS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs: checks that everything works")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("make bench needs wrk (Debian: apt-get install wrk); `make bench` installs it when it can")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="llm-usage-bench-"))
    print(f"work directory {workdir}, load average {os.getloadavg()[0]:.2f}", flush=True)
    services = start(workdir)
    bench = Bench(services, workdir, args.quick)
    steps = {
        "non-streamed chat completions (wrk, 16 and 1 keep-alive connections)": bench.non_streamed,
        "first byte of a paced stream (20 events, 50 ms apart)": bench.first_byte,
        "a fast stream of 10,000 events (wrk, 1 connection)": bench.events_per_second,
        "200 concurrent paced streams": bench.concurrent_streams,
        "memory while streaming": bench.memory,
        "three 100 MB request bodies at once": bench.large_bodies,
        "the addon's rows": bench.rows,
    }
    try:
        for title, step in steps.items():
            print(f"\n== {title}", flush=True)
            step()
    finally:
        for service in reversed(services.values()):
            service.stop()
    width = max(len(r[0]) for r in bench.results)
    print(f"\n{'figure':<{width}}  {'bare':>14}  {'addon':>22}  {'result (middle half of rounds)':>30}  target")
    for figure, bare, addon, result, target, ok in bench.results:
        print(f"{figure:<{width}}  {bare:>14}  {addon:>22}  {result:>30}  {target} {_verdict(ok)}")
    if args.json:
        keys = ("figure", "bare", "addon", "result", "target", "ok")
        args.json.write_text(json.dumps([dict(zip(keys, r, strict=True)) for r in bench.results], indent=2))
    return 0 if all(r[5] is not False for r in bench.results) else 1


if __name__ == "__main__":
    sys.exit(main())
