"""The tests' mock upstream (``tests/mock_upstream.py``), run standalone for the benchmark.

Run: ``python bench/mock_server.py --port 9100``. Its ``X-Mock-Event-Bytes: N`` header pads
every stream event to about N bytes (token counts unchanged), so the RSS measurement can
push a gigabyte through quickly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.support.mock_upstream import MockUpstream  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    web.run_app(MockUpstream().app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
