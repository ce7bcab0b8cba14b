"""The accountant process: rows are built outside mitmdump, and none is lost to it.

It must survive what a terminal does (Ctrl+C reaches every process of the group), stop
when the proxy stops (even a killed one), and when it cannot run, the proxy accounts
for the calls itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from llm_usage.accountant import AccountantConfig, AccountantProcess, LocalAccountant
from llm_usage.accounting import CallRecord
from llm_usage.pricing import Pricer
from llm_usage.storage import open_database
from tests.harness import Proxy, providers_file
from tests.mock_upstream import MockUpstream


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie child of ours counts as gone
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _chat(proxy: Proxy, n: int) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="sk-test")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: client.chat.completions.create(model="gpt-4o-mini", messages=[]), range(n)))


def _count(db: Path) -> int:
    return int(sqlite3.connect(db).execute("select count(*) from requests").fetchone()[0])


def test_ctrl_c_to_the_whole_group_still_writes_every_row(upstream: MockUpstream, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    _chat(proxy, 30)
    (helper,) = _children(proxy.proc.pid)
    assert os.getpgid(helper) != os.getpgid(proxy.proc.pid)  # a terminal's Ctrl+C reaches the proxy alone
    for pid in (helper, proxy.proc.pid):  # and even a SIGINT sent to the helper too loses nothing
        os.kill(pid, signal.SIGINT)
    proxy.proc.wait(20)
    assert _gone(helper, 10)
    assert _count(proxy.db_path) == 30
    proxy.stop()


def test_a_killed_proxy_leaves_no_helper_behind(upstream: MockUpstream, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    _chat(proxy, 5)
    proxy.rows_after(0, 5)
    (helper,) = _children(proxy.proc.pid)
    proxy.proc.kill()
    proxy.proc.wait(10)
    assert _gone(helper, 10)  # its pipe closed: it wrote what it had and left
    proxy.stop()


def test_when_the_helper_dies_the_proxy_accounts_itself(upstream: MockUpstream, tmp_path: Path) -> None:
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    try:
        _chat(proxy, 3)
        proxy.rows_after(0, 3)
        (helper,) = _children(proxy.proc.pid)
        os.kill(helper, signal.SIGKILL)
        assert _gone(helper, 10)
        for _ in range(5):
            response = httpx.post(f"{proxy.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini"})
            assert response.status_code == 200  # traffic never notices
            time.sleep(0.1)
        rows = proxy.rows_after(0, 8)
        assert all(r["input_tokens"] == 53 for r in rows)
        assert "accountant process stopped" in proxy.output()
        assert "in 53 out 6" in proxy.output().rsplit("accountant process stopped", 1)[1]  # lines still printed
    finally:
        proxy.stop()


def test_quiet_mitmdump_prints_no_call_lines(upstream: MockUpstream, tmp_path: Path) -> None:
    providers = providers_file(tmp_path, upstream.url)
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers}", "--set", "termlog_verbosity=error"])
    try:
        _chat(proxy, 2)
        proxy.rows_after(0, 2)
        assert "llm-usage: openai" not in proxy.output()
    finally:
        proxy.stop()


def _record(i: int) -> CallRecord:
    body = b'{"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":%d,"completion_tokens":1}}' % i
    return CallRecord(
        provider="openai",
        genai_provider="openai",
        wire_format="openai",
        path="/v1/chat/completions",
        method="POST",
        client=None,
        started_at=time.time(),
        ended_at=time.time(),
        status_code=200,
        failure=None,
        stream_usage=None,
        stream_error=None,
        first_byte_at=None,
        body=body,
        content_type="application/json",
        content_encoding="",
        request_body=b"{}",
        request_encoding="",
        secrets=(),
    )


def test_a_helper_that_cannot_start_falls_back_to_this_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "u.db"
    open_database(db).close()
    lines: list[str] = []
    config = AccountantConfig(str(db), pricing_file=str(tmp_path / "missing.yaml"), quiet=True)
    accountant = AccountantProcess(config, lambda: LocalAccountant(str(db), Pricer({}, {}), lines.extend))
    assert _gone(accountant.pid, 20)  # it could not read its pricing file and said so
    with caplog.at_level(logging.ERROR):
        for i in range(1, 4):
            accountant.submit(_record(i), None)  # type: ignore[arg-type]
            time.sleep(0.08)
        accountant.close()
    assert "accountant process stopped" in caplog.text
    got = sqlite3.connect(db).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (2,), (3,)]
    assert len(lines) == 3


def test_the_helper_writes_every_row_it_is_sent(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    open_database(db).close()
    config = AccountantConfig(str(db), pricing_file="", quiet=True)
    accountant = AccountantProcess(config, lambda: pytest.fail("no fallback expected"))  # type: ignore[arg-type,return-value]
    for i in range(500):
        accountant.submit(_record(i), None)  # type: ignore[arg-type]
    accountant.close()
    assert _gone(accountant.pid, 1)
    row = sqlite3.connect(db).execute("select count(*), sum(input_tokens), min(cost_usd) from requests").fetchone()
    assert row[:2] == (500, sum(range(500))) and row[2] is not None and row[2] >= 0
