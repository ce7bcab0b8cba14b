"""A local mock of every provider the proxy routes to (tests and benchmarks never reach
the internet). One aiohttp server answers OpenAI, Anthropic, Gemini and Ollama paths with
realistic bodies and streams; request headers steer the odd cases:

- ``X-Mock-Fixture: <name>``: answer with that recorded fixture's status, content-type and
  body (from ../shared/fixtures or tests/fixtures), whatever the path.
- ``X-Mock-Encoding: gzip|br|deflate|zstd``: content-encode the response.
- ``X-Mock-Pace-Ms: N``: sleep N ms between stream events.
- ``X-Mock-Events: N``: number of content events in a stream (default 6).
- ``X-Mock-Event-Bytes: N``: pad every content word so each stream event carries about N
  bytes (token counts unchanged: one per word) -- for pushing a gigabyte through quickly.
- ``X-Mock-Cut-After: N``: reset the connection after N stream events.
- ``X-Mock-Status: N``: answer with that HTTP error status and a provider-style error body
  (a 429 with ``retry-after`` and the rate-limit headers). JSON answers of the OpenAI and
  Anthropic APIs carry the rate-limit headers those providers send.
- ``X-Mock-Usage: <JSON object>``: fields that replace those of an OpenAI chat answer's
  usage (a hostile or broken provider: ``{"prompt_tokens": -5}``).

``GET .../responses`` with ``Upgrade: websocket`` is the Responses API's WebSocket mode:
each ``response.create`` message is answered with the events of the SSE stream, one per
message (echoing its ``stream_id``), ending in ``response.completed``. On the handshake,
``X-Mock-Fixture`` replays a recorded Responses SSE stream's events instead,
``X-Mock-Events`` / ``X-Mock-Pace-Ms`` work as above, ``X-Mock-Cut-After: N`` drops the
socket after N events, and ``X-Mock-Status: N`` answers every turn with an ``error`` event.
A socket's record keeps the client's messages (``frames``) and the type of every message
both ways, in order (``messages``).

Every request is recorded (method, path, query, headers, body) for the tests to inspect
at ``GET /__mock/requests`` (served directly, never through the proxy).

Run standalone: ``python tests/mock_upstream.py --port 9100``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import ssl
import threading
import zlib
from pathlib import Path
from typing import Any

import brotli
import zstandard
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIRS = (ROOT / "tests" / "fixtures", ROOT.parent / "shared" / "fixtures")

RECORD = web.RequestKey("record", dict)
"""The mock's record of the request being answered (see ``_bill``)."""

WORDS = ["Hello", " from", " the", " mock", " upstream", "!", " Ünïcödé", " 🚀", " done", "."]


def _encode(body: bytes, encoding: str | None) -> bytes:
    if not encoding:
        return body
    return {
        "gzip": lambda b: gzip.compress(b),
        "deflate": lambda b: zlib.compress(b),
        "br": lambda b: brotli.compress(b),
        "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    }[encoding](body)


class _StreamEncoder:
    """Incremental content-encoding so a paced stream stays paced when compressed."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding
        if encoding == "gzip":
            self._z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
        elif encoding == "br":
            self._br = brotli.Compressor()
        elif encoding == "zstd":
            self._zs = zstandard.ZstdCompressor().compressobj()

    def chunk(self, data: bytes) -> bytes:
        if self.encoding in ("gzip", "deflate"):
            return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
        if self.encoding == "br":
            return self._br.process(data) + self._br.flush()
        if self.encoding == "zstd":
            return self._zs.compress(data) + self._zs.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return data

    def end(self) -> bytes:
        if self.encoding in ("gzip", "deflate"):
            return self._z.flush()
        if self.encoding == "br":
            return self._br.finish()
        if self.encoding == "zstd":
            return self._zs.flush()
        return b""


def load_fixture(name: str) -> dict[str, Any]:
    for folder in FIXTURE_DIRS:
        path = folder / f"{name}.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise KeyError(name)


def _rate_limit_headers(path: str) -> dict[str, str]:
    """What the providers report of a key's rate limits, as they write it."""
    if path.endswith("/v1/messages"):
        return {
            "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2026-11-30T12:00:30Z",
            "anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "27000",
            "anthropic-ratelimit-input-tokens-reset": "2026-11-30T12:00:06Z",
        }  # fmt: skip
    if path.endswith(("/chat/completions", "/responses")):
        return {
            "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "150000", "x-ratelimit-reset-tokens": "6m0s",
        }  # fmt: skip
    return {}


class MockUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = web.Application(client_max_size=512 * 1024 * 1024)
        self.app.router.add_get("/__mock/requests", self._list_requests)
        self.app.router.add_post("/__mock/reset", self._reset)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    async def start_async(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start_in_thread(self, tls: ssl.SSLContext | None = None) -> MockUpstream:
        """Serve on a free loopback port; over TLS with ``tls`` (posing as a provider's host)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async(tls=tls))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="mock-upstream")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ recording

    async def _list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def _reset(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response({"ok": True})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket" and request.path.endswith("/responses"):
            return await self._responses_socket(request)
        raw = await request.read()
        request[RECORD] = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": raw.decode("utf-8", "replace"),
            "billed": [],
        }
        self.requests.append(request[RECORD])
        if len(self.requests) > 1000:
            del self.requests[:500]
        fixture = request.headers.get("X-Mock-Fixture")
        if fixture:
            return await self._fixture(request, fixture)
        status = request.headers.get("X-Mock-Status")
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
        path = request.path
        if status:
            return self._error(path, int(status), body)
        if path.endswith(("/chat/completions", "/v1/completions")) or path == "/completions":
            return await self._openai_chat(request, body, legacy=path.endswith("/v1/completions"))
        if path.endswith("/embeddings"):
            return self._json(
                request,
                {
                    "object": "list",
                    "data": [{"embedding": [0.1, 0.2]}],
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 8, "total_tokens": 8},
                },
            )
        if path.endswith("/responses"):
            return await self._openai_responses(request, body)
        if path.endswith("/v1/messages"):
            return await self._anthropic(request, body)
        if ":generateContent" in path or ":streamGenerateContent" in path:
            return await self._gemini(request, path)
        if path in ("/api/chat", "/api/generate"):
            return await self._ollama(request, body, chat=path == "/api/chat")
        if path == "/api/embed":
            return self._json(
                request,
                {"model": body.get("model"), "embeddings": [[0.1]], "prompt_eval_count": 6, "total_duration": 1000},
            )
        if request.method == "GET" and path.endswith("/models"):
            return self._json(request, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
        return web.json_response({"error": {"message": f"mock: no route for {path}"}}, status=404)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _bill(request: web.Request, input_tokens: int, output_tokens: int) -> None:
        """Note the usage an answer reports, as the row must count it (``billed`` of the
        request's record: a socket's record gets one per turn)."""
        request[RECORD]["billed"].append([input_tokens, output_tokens])

    def _json(self, request: web.Request, payload: Any, status: int = 200) -> web.Response:
        encoding = request.headers.get("X-Mock-Encoding")
        body = _encode(json.dumps(payload).encode(), encoding)
        headers = {"Content-Type": "application/json", **_rate_limit_headers(request.path)}
        if encoding:
            headers["Content-Encoding"] = encoding
        return web.Response(body=body, status=status, headers=headers)

    def _error(self, path: str, status: int, body: dict[str, Any]) -> web.Response:
        message = f"mock error {status} for model {body.get('model')}"
        if path.endswith("/v1/messages"):
            payload: Any = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        elif "generateContent" in path.lower():
            payload = {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
        elif path.startswith("/api/"):
            payload = {"error": message}
        else:
            payload = {"error": {"message": message, "type": "invalid_request_error", "code": None}}
        headers = {"retry-after": "7", **_rate_limit_headers(path)} if status == 429 else {}
        return web.json_response(payload, status=status, headers=headers)

    async def _stream(self, request: web.Request, content_type: str, events: list[bytes]) -> web.StreamResponse:
        encoding = request.headers.get("X-Mock-Encoding")
        pace = float(request.headers.get("X-Mock-Pace-Ms", "0")) / 1000
        cut_after = int(request.headers.get("X-Mock-Cut-After", "-1"))
        response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        if encoding:
            response.headers["Content-Encoding"] = encoding
        response.enable_chunked_encoding()
        await response.prepare(request)
        encoder = _StreamEncoder(encoding)
        for index, event in enumerate(events):
            if index == cut_after:
                assert request.transport is not None
                request.transport.abort()  # a reset mid-stream
                return response
            if pace and index:
                await asyncio.sleep(pace)
            await response.write(encoder.chunk(event))
        tail = encoder.end()
        if tail:
            await response.write(tail)
        await response.write_eof()
        return response

    @staticmethod
    def _n_events(request: web.Request) -> int:
        return int(request.headers.get("X-Mock-Events", "6"))

    def _words(self, request: web.Request) -> list[str]:
        n = self._n_events(request)
        words = [WORDS[i % len(WORDS)] for i in range(n)]
        pad = max(int(request.headers.get("X-Mock-Event-Bytes", "0") or 0) - 200, 0)  # ~200 bytes of envelope
        if pad:
            filler = ("lorem ipsum dolor sit amet " * (pad // 27 + 1))[:pad]
            words = [f"{word} {filler}" for word in words]
        return words

    async def _fixture(self, request: web.Request, name: str) -> web.StreamResponse:
        data = load_fixture(name)
        response = data["response"]
        content_type = response["headers"].get("content-type", "application/json")
        body = response["body_text"].encode()
        if response["status"] == 200 and any(k in content_type for k in ("event-stream", "ndjson")):
            # Send it as the provider did: in pieces, as chunked transfer.
            pieces = [body[i : i + 97] for i in range(0, len(body), 97)]
            return await self._stream(request, content_type, pieces)
        encoding = request.headers.get("X-Mock-Encoding")
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        return web.Response(body=_encode(body, encoding), status=response["status"], headers=headers)

    # ------------------------------------------------------------ OpenAI

    async def _openai_chat(self, request: web.Request, body: dict[str, Any], legacy: bool) -> web.StreamResponse:
        model = str(body.get("model") or "gpt-4o-mini")
        served = model if model[-1:].isdigit() else f"{model}-2024-07-18"
        words = self._words(request)
        usage = {
            "prompt_tokens": 53,
            "completion_tokens": len(words),
            "total_tokens": 53 + len(words),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        usage.update(json.loads(request.headers.get("X-Mock-Usage", "{}")))
        self._bill(request, 53, len(words))
        obj = "text_completion" if legacy else "chat.completion"
        if not body.get("stream"):
            if legacy:
                choices = [{"text": "".join(words), "index": 0, "finish_reason": "stop"}]
            else:
                choices = [
                    {"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop"}
                ]
            return self._json(
                request,
                {
                    "id": "chatcmpl-mock",
                    "object": obj,
                    "created": 1,
                    "model": served,
                    "choices": choices,
                    "usage": usage,
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[Any], extra: dict[str, Any] | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": "chatcmpl-mock",
                "object": f"{obj}.chunk" if not legacy else obj,
                "created": 1,
                "model": served,
                "choices": choices,
            }
            if include_usage:
                payload["usage"] = None
            if extra:
                payload.update(extra)
            return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

        events = []
        for word in words:
            if legacy:
                events.append(chunk([{"text": word, "index": 0, "finish_reason": None}]))
            else:
                events.append(chunk([{"index": 0, "delta": {"content": word}, "finish_reason": None}]))
        events.append(
            chunk(
                [{"index": 0, "delta": {}, "finish_reason": "stop"}]
                if not legacy
                else [{"text": "", "index": 0, "finish_reason": "stop"}]
            )
        )
        if include_usage:
            events.append(chunk([], {"usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, "text/event-stream; charset=utf-8", events)

    def _response_events(self, request: web.Request, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A Responses API answer as its stream's events; the last one holds the whole response."""
        model = str(body.get("model") or "gpt-5")
        words = self._words(request)
        response = {
            "id": "resp_mock",
            "object": "response",
            "model": f"{model}-2025-08-07",
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_mock",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "".join(words), "annotations": []}],
                }
            ],
            "usage": {
                "input_tokens": 1200,
                "input_tokens_details": {"cached_tokens": 1024},
                "output_tokens": 64 + len(words),
                "output_tokens_details": {"reasoning_tokens": 64},
                "total_tokens": 1264 + len(words),
            },
        }
        self._bill(request, 1200, 64 + len(words))
        item = response["output"][0]
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_mock", "output_index": 0, "content_index": 0}
        # the events as the API sends them (https://platform.openai.com/docs/api-reference/responses-streaming):
        # a client such as the AI SDK looks up each delta's item and part by these ids
        events = [
            {"type": "response.created",
             "response": {**response, "status": "in_progress", "output": [], "usage": None}},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", **where, "part": part},
        ]  # fmt: skip
        events += [{"type": "response.output_text.delta", **where, "delta": word} for word in words]
        events += [
            {"type": "response.output_text.done", **where, "text": "".join(words)},
            {"type": "response.content_part.done", **where, "part": {**part, "text": "".join(words)}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": response},
        ]
        return events

    async def _openai_responses(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        events = self._response_events(request, body)
        if not body.get("stream"):
            return self._json(request, events[-1]["response"])
        sse = [f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
        return await self._stream(request, "text/event-stream; charset=utf-8", sse)

    async def _responses_socket(self, request: web.Request) -> web.WebSocketResponse:
        """The Responses API's WebSocket mode (https://developers.openai.com/api/docs/guides/websocket-mode)."""
        socket = web.WebSocketResponse(compress=True)  # permessage-deflate when the client offers it
        await socket.prepare(request)
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": "",
            "frames": [],
            "messages": [],
            "billed": [],
        }
        request[RECORD] = record
        self.requests.append(record)
        pace = float(request.headers.get("X-Mock-Pace-Ms", "0")) / 1000
        cut_after = int(request.headers.get("X-Mock-Cut-After", "-1"))
        sent = 0
        async for message in socket:
            if message.type != web.WSMsgType.TEXT:
                continue
            create = json.loads(message.data)
            record["frames"].append(create)
            record["messages"].append({"from_client": True, "type": create.get("type"), "model": create.get("model")})
            if create.get("type") != "response.create":
                continue
            lane = {"stream_id": create["stream_id"]} if "stream_id" in create else {}
            for event in self._socket_events(request, create):
                if sent == cut_after:
                    await socket.close(code=1011)
                    return socket
                if pace and sent:
                    await asyncio.sleep(pace)
                await socket.send_str(json.dumps({**event, **lane}, separators=(",", ":")))
                record["messages"].append({"from_client": False, "type": event["type"]})
                sent += 1
        return socket

    def _socket_events(self, request: web.Request, create: dict[str, Any]) -> list[dict[str, Any]]:
        fixture = request.headers.get("X-Mock-Fixture")
        if fixture:
            body = load_fixture(fixture)["response"]["body_text"]
            data = (line[5:].strip() for line in body.splitlines() if line.startswith("data:"))
            return [json.loads(d) for d in data if d.startswith("{")]  # not OpenRouter's "[DONE]"
        status = request.headers.get("X-Mock-Status")
        if status:
            error = {"type": "invalid_request_error", "code": "mock", "message": f"mock: status {status}"}
            return [{"type": "error", "status": int(status), "error": error}]
        return self._response_events(request, create)

    # ------------------------------------------------------------ Anthropic

    async def _anthropic(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        model = str(body.get("model") or "claude-sonnet-4-5")
        served = model if model[-1:].isdigit() and len(model) > 20 else f"{model}-20250929"
        words = self._words(request)
        usage = {
            "input_tokens": 12,
            "cache_creation_input_tokens": 400,
            "cache_read_input_tokens": 1100,
            "output_tokens": len(words),
        }
        self._bill(request, 12 + 400 + 1100, len(words))
        if not body.get("stream"):
            return self._json(
                request,
                {
                    "id": "msg_mock",
                    "type": "message",
                    "role": "assistant",
                    "model": served,
                    "content": [{"type": "text", "text": "".join(words)}],
                    "stop_reason": "end_turn",
                    "usage": usage,
                },
            )

        def event(kind: str, payload: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()

        events = [
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_mock",
                        "type": "message",
                        "role": "assistant",
                        "model": served,
                        "content": [],
                        "stop_reason": None,
                        "usage": {**usage, "output_tokens": 1},
                    }
                },
            ),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
        events += [
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in words
        ]
        events += [
            event("content_block_stop", {"index": 0}),
            event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(words)}}),
            event("message_stop", {}),
        ]
        return await self._stream(request, "text/event-stream; charset=utf-8", events)

    # ------------------------------------------------------------ Gemini

    async def _gemini(self, request: web.Request, path: str) -> web.StreamResponse:
        model = path.split("/models/", 1)[-1].split(":", 1)[0]
        words = self._words(request)

        def element(i: int, final: bool) -> dict[str, Any]:
            meta: dict[str, Any] = {
                "promptTokenCount": 40,
                "cachedContentTokenCount": 32,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 60 + i + 1,
            }
            if i or final:
                meta["candidatesTokenCount"] = i + 1
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": words[min(i, len(words) - 1)]}]}
            }
            if final:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": meta, "modelVersion": model, "responseId": "mock"}

        if ":generateContent" in path:
            whole = element(len(words) - 1, True)
            whole["candidates"][0]["content"]["parts"][0]["text"] = "".join(words)
            return self._json(request, whole)
        elements = [element(i, i == len(words) - 1) for i in range(len(words))]
        if request.query.get("alt") == "sse":
            events = [b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in elements]
            return await self._stream(request, "text/event-stream", events)
        pieces = []
        for i, e in enumerate(elements):
            text = json.dumps(e, indent=2)
            pieces.append((("[" if i == 0 else "\n,\r\n") + text).encode())
        pieces.append(b"\n]")
        return await self._stream(request, "application/json; charset=UTF-8", pieces)

    # ------------------------------------------------------------ Ollama

    async def _ollama(self, request: web.Request, body: dict[str, Any], chat: bool) -> web.StreamResponse:
        model = str(body.get("model") or "llama3")
        words = self._words(request)

        def obj(word: str, done: bool) -> dict[str, Any]:
            payload: dict[str, Any] = {"model": model, "created_at": "2026-11-29T00:00:00Z", "done": done}
            if chat:
                payload["message"] = {"role": "assistant", "content": word}
            else:
                payload["response"] = word
            if done:
                payload.update(
                    {"done_reason": "stop", "total_duration": 1000, "prompt_eval_count": 26, "eval_count": len(words)}
                )
            return payload

        if body.get("stream", True) is False:
            whole = obj("".join(words), True)
            return self._json(request, whole)
        compact = {"separators": (",", ":"), "ensure_ascii": False}  # as Ollama (Go) writes it
        lines = [json.dumps(obj(w, False), **compact).encode() + b"\n" for w in words]
        lines.append(json.dumps(obj("", True), **compact).encode() + b"\n")
        return await self._stream(request, "application/x-ndjson", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    mock = MockUpstream()
    web.run_app(mock.app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
