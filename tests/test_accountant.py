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

from llm_usage import accountant as accountant_module
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


def test_a_killed_proxy_leaves_no_helper_behind_even_while_the_database_fails(
    upstream: MockUpstream, tmp_path: Path
) -> None:
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_providers={providers_file(tmp_path, upstream.url)}"])
    _chat(proxy, 1)
    proxy.rows_after(0, 1)
    conn = sqlite3.connect(proxy.db_path)
    conn.execute("drop table requests")  # the helper now retries its writes, and waits
    conn.commit()
    conn.close()
    _chat(proxy, 2)
    time.sleep(0.5)
    (helper,) = _children(proxy.proc.pid)
    proxy.proc.kill()
    proxy.proc.wait(10)
    assert _gone(helper, 15)
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
    config = AccountantConfig(str(db), pricing_file=str(tmp_path / "missing.yaml"), termlog_verbosity="error")
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
    fallbacks: list[int] = []

    def fallback() -> LocalAccountant:
        fallbacks.append(1)
        return LocalAccountant(str(db), Pricer({}, {}), lambda lines: None)

    accountant = AccountantProcess(AccountantConfig(str(db), "", "error"), fallback)
    for i in range(600):  # several frames, more than a pipe buffer holds
        accountant.submit(_record(i), None)
    accountant.close()
    assert _gone(accountant.pid, 1) and not fallbacks
    row = sqlite3.connect(db).execute("select count(*), sum(input_tokens), min(cost_usd) from requests").fetchone()
    assert row[:2] == (600, sum(range(600))) and row[2] is not None and row[2] >= 0


def _stalled_helper(tmp_path: Path) -> tuple[Path, AccountantProcess]:
    """A helper that was sent calls but never got to write them (stopped, not dead)."""
    db = tmp_path / "u.db"
    open_database(db).close()
    accountant = AccountantProcess(
        AccountantConfig(str(db), "", "error"),
        lambda: LocalAccountant(str(db), Pricer({}, {}), lambda lines: None),
    )
    time.sleep(1.5)  # started (so the frames go into its pipe, not a broken one)
    os.kill(accountant.pid, signal.SIGSTOP)
    for i in range(1, 6):
        accountant.submit(_record(i), None)
    time.sleep(0.3)  # sent down the pipe, never confirmed
    return db, accountant


def test_calls_a_dead_helper_never_confirmed_are_accounted_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db, accountant = _stalled_helper(tmp_path)
    with caplog.at_level(logging.ERROR):
        os.kill(accountant.pid, signal.SIGKILL)
        assert _gone(accountant.pid, 10)
        accountant.submit(_record(6), None)  # the sender notices, and takes over all six
        time.sleep(0.3)
        accountant.close()
    assert "6 it had not confirmed or not yet received are accounted here" in caplog.text
    got = sqlite3.connect(db).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (2,), (3,), (4,), (5,), (6,)]  # each once, in order


def test_close_does_not_wait_forever_for_a_stuck_helper(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db, accountant = _stalled_helper(tmp_path)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR):
        accountant.close(timeout=2)
    assert time.monotonic() - began < 8
    assert "did not finish within 2s" in caplog.text
    assert _count(db) == 5  # what it held was accounted here instead


def test_an_unexpected_error_in_the_sender_loses_no_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "u.db"
    open_database(db).close()
    accountant = AccountantProcess(
        AccountantConfig(str(db), "", "error"),
        lambda: LocalAccountant(str(db), Pricer({}, {}), lambda lines: None),
    )

    def out_of_memory(*args: object, **kwargs: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(accountant_module.pickle, "dumps", out_of_memory)
    with caplog.at_level(logging.ERROR):
        for i in (1, 2, 3):
            accountant.submit(_record(i), None)
        time.sleep(0.3)
        accountant.submit(_record(4), None)
        accountant.close()
    assert "accountant process stopped (MemoryError" in caplog.text
    got = sqlite3.connect(db).execute("select input_tokens from requests order by id").fetchall()
    assert got == [(1,), (2,), (3,), (4,)]
