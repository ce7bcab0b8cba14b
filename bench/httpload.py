"""A small, fast HTTP/1.1 load generator on raw asyncio streams (keep-alive, chunked).

No HTTP library sits between the clock and the socket: a request is one prebuilt byte
string written at once, a response is read with ``readuntil``/``readexactly``. That keeps
the client's own cost per request in the tens of microseconds, far below the proxy's, so
the figures are the proxy's and not the load generator's.

Only ever used against 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi in five words."}]},
    separators=(",", ":"),
).encode()
STREAM_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me a story."}], "stream": True},
    separators=(",", ":"),
).encode()
DONE_MARK = b"data: [DONE]"


def build_request(port: int, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One POST as raw bytes (JSON body, a dummy bearer token like an SDK would send)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "User-Agent: llm-usage-bench/1",
        "Accept: */*",
        "Content-Type: application/json",
        "Authorization: Bearer sk-bench-not-a-real-key",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ProtocolError(Exception):
    pass


@dataclass
class Response:
    status: int
    body_bytes: int = 0
    first_byte_at: float | None = None
    """perf_counter() when the first body byte was read (None for an empty body)."""
    tail: bytes = b""
    """The last bytes of the body (enough to see ``data: [DONE]``)."""
    events: int = 0
    """Occurrences of ``data:`` in the body, when counted."""
    body: bytes | None = None


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it run one after the other."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            self.writer = None

    async def request(
        self,
        raw: bytes,
        *,
        count_events: bool = False,
        keep_body: bool = False,
        on_first_byte: Callable[[float], None] | None = None,
    ) -> Response:
        reader, writer = self.reader, self.writer
        assert reader is not None and writer is not None, "connection not open"
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        response = Response(status=int(parts[1]))
        length: int | None = None
        chunked = False
        close = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        pieces: list[bytes] | None = [] if keep_body else None
        carry = b""
        tail = b""

        def take(data: bytes) -> None:
            nonlocal carry, tail
            if response.first_byte_at is None:
                response.first_byte_at = time.perf_counter()
                if on_first_byte is not None:
                    on_first_byte(response.first_byte_at)
            response.body_bytes += len(data)
            if count_events:
                joined = carry + data
                response.events += joined.count(b"data:")
                carry = joined[-4:]  # shorter than b"data:": never counted twice
            tail = (tail + data)[-64:] if len(data) < 64 else data[-64:]
            if pieces is not None:
                pieces.append(data)

        if chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, bounded by the stream
                        pass
                    break
                take(await reader.readexactly(size))
                if await reader.readexactly(2) != b"\r\n":
                    raise ProtocolError("bad chunk terminator")
        elif length is not None:
            if length:
                take(await reader.readexactly(length))
        else:
            close = True
            while data := await reader.read(1 << 16):
                take(data)
        response.tail = tail
        if pieces is not None:
            response.body = b"".join(pieces)
        if close:
            await self.close()
            await self.open()
        return response


# ------------------------------------------------------------------ statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ------------------------------------------------------------------ closed-loop load


@dataclass
class LoadResult:
    """One closed-loop run: ``concurrency`` connections, each sending back to back."""

    concurrency: int
    window_s: float
    completed_in_window: int = 0
    sent_total: int = 0
    """Every request sent, warm-up included (for checking the row count)."""
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    @property
    def rps(self) -> float:
        return self.completed_in_window / self.window_s if self.window_s else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


async def closed_loop(port: int, raw: bytes, concurrency: int, warmup_s: float, measure_s: float) -> LoadResult:
    """Keep ``concurrency`` keep-alive connections busy for ``warmup_s + measure_s``.

    Throughput counts the requests that complete inside the measuring window; latency is
    taken over the same requests. When time is up no new request starts, the in-flight
    ones finish (so every request sent is also answered, and logged by the addon).
    """
    result = LoadResult(concurrency=concurrency, window_s=measure_s)
    conns = [await Connection(port).open() for _ in range(concurrency)]
    start = time.perf_counter()
    window_start = start + warmup_s
    window_end = window_start + measure_s
    latencies = result.latencies
    perf = time.perf_counter

    async def worker(conn: Connection) -> None:
        while True:
            began = perf()
            if began >= window_end:
                return
            result.sent_total += 1
            try:
                response = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError) as exc:
                result.errors += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                await conn.close()
                await conn.open()
                continue
            ended = perf()
            if response.status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {response.status}"
            if window_start <= ended <= window_end:
                result.completed_in_window += 1
                latencies.append(ended - began)

    try:
        await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), timeout=warmup_s + measure_s + 30)
    finally:
        for c in conns:
            await c.close()
    return result
