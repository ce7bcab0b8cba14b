"""Shared fixtures: one mock upstream and one real mitmdump with the addon per session.

mitmproxy says its test helpers (taddons/tflow) have no stable API; mitmproxy is pinned
in requirements.txt, and the few unit tests that use them go through ``addon_context``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import SHARED_FIXTURES, Proxy, providers_file
from tests.support.mock_upstream import MockUpstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream().start_in_thread()
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def proxy(upstream: MockUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("proxy")
    # Extra slugs: one per wire format for replaying recorded traffic of providers outside
    # the built-in ten, and one whose upstream is down (nothing listens on port 9).
    extra = "".join(
        f'fx-{fmt}: {{base_url: "{upstream.url}", format: {fmt}}}\n'
        for fmt in ("openai", "anthropic", "gemini", "ollama")
    )
    extra += 'deadend: {base_url: "http://127.0.0.1:9", format: openai}\n'
    providers = providers_file(workdir, upstream.url, extra)
    running = Proxy(workdir, ["--set", f"llm_usage_providers={providers}"])
    yield running
    running.stop()


_ids = itertools.count()


@pytest.fixture
def new_rows(proxy: Proxy):  # type: ignore[no-untyped-def]
    """``new_rows(n)`` -> the n rows of calls made since the test started (a row of an
    earlier test's call that is written late is not counted)."""
    start = proxy.max_id()
    started_at = time.time()

    def get(count: int, timeout: float = 10.0) -> list[dict[str, object]]:
        return proxy.rows_after(start, count, timeout, since=started_at)

    return get


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"recorded provider traffic not found at {SHARED_FIXTURES} (it lives beside the repo)")
    return SHARED_FIXTURES


@pytest.fixture
def addon(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The addon inside mitmproxy's test context (taddons: unstable API, mitmproxy is
    pinned), started as mitmproxy starts it: loaded, every option configured, running.

    Yields ``(addon, tctx)``; its database is a temporary file.
    """
    from mitmproxy.test import taddons

    from llm_usage.proxy.addon import LlmUsage

    addon = LlmUsage()
    with taddons.context(addon) as tctx:
        tctx.options.update(llm_usage_db=str(tmp_path / "usage.db"))
        addon.configure(set(tctx.options.keys()))  # as at start-up: every option "updated"
        addon.running()
        yield addon, tctx
        addon.done()
