"""The tests' mock upstream (``tests/mock_upstream.py``), run standalone for the benchmark,
plus one knob the RSS measurement needs until the mock grows it itself:

- ``X-Mock-Event-Bytes: N``: pad every content word so each stream event carries about
  N bytes (any format: OpenAI chat/legacy/Responses, Anthropic, Gemini, Ollama). The
  token counts stay what they were (one token per word).

Streaming 1 GB through the proxy in ~200-byte events takes minutes (the per-event cost of
the proxy dominates); in 16 kB events it takes seconds, through the same code paths.
When ``tests/mock_upstream.py`` honours the header itself, it is used unchanged.

Run: ``python bench/mock_server.py --port 9100``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests import mock_upstream  # noqa: E402

EVENT_BYTES_HEADER = "X-Mock-Event-Bytes"
NATIVE = EVENT_BYTES_HEADER in inspect.getsource(mock_upstream)
_FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
_ENVELOPE = 200
"""Rough size of an event without its text (JSON keys, ids, model, SSE framing)."""


class BenchMockUpstream(mock_upstream.MockUpstream):
    def _words(self, request: web.Request) -> list[str]:
        words = super()._words(request)
        size = int(request.headers.get(EVENT_BYTES_HEADER, "0") or 0)
        pad = max(size - _ENVELOPE, 0)
        if not pad:
            return words
        filler = (_FILLER * (pad // len(_FILLER) + 1))[:pad]
        return [word + " " + filler for word in words]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    mock = mock_upstream.MockUpstream() if NATIVE else BenchMockUpstream()
    web.run_app(mock.app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
