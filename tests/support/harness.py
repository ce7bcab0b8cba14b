"""Real processes for end-to-end tests: a mock upstream and a real ``mitmdump -s addon.py``.

The proxy runs exactly as a user runs it (reverse mode, no extra --set needed), with
every provider re-pointed at the local mock through a ``llm_usage_providers`` file, so
nothing ever reaches the internet.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The checkout."""
OWN_FIXTURES = ROOT / "tests" / "fixtures"
MITMDUMP = Path(sys.executable).with_name("mitmdump")
MITMWEB = Path(sys.executable).with_name("mitmweb")
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
ALL_SLUGS = (
    "openai",
    "anthropic",
    "gemini",
    "nvidia",
    "openrouter",
    "moonshot",
    "zai",
    "minimax",
    "ollama",
    "ollama-cloud",
)


PLACEHOLDER_UPSTREAM = "reverse:http://127.0.0.1:9"
"""``make run``'s reverse URL: never contacted, every request is routed by its path."""


def mitmdump_command(
    port: int, *args: str, program: Path = MITMDUMP, addon: bool = True, mode: str = PLACEHOLDER_UPSTREAM
) -> list[str]:
    """mitmdump (or mitmweb) in reverse mode on 127.0.0.1:``port``, with the addon loaded as
    ``make run`` loads it (or, ``addon=False``, bare), then ``args``."""
    script = ["-s", str(ROOT / "addon.py")] if addon else []
    return [str(program), *script, "--mode", mode, "--listen-host", "127.0.0.1", "-p", str(port), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def providers_file(directory: Path, upstream_url: str, extra: str = "") -> Path:
    """Every built-in slug re-pointed at ``upstream_url`` (their formats kept)."""
    lines = [f'{slug}: {{base_url: "{upstream_url}"}}' for slug in ALL_SLUGS]
    path = directory / "providers.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class Proxy:
    """A running mitmdump (or mitmweb) with the addon; its output goes to ``log_path``."""

    def __init__(
        self,
        workdir: Path,
        args: list[str],
        program: Path = MITMDUMP,
        env: dict[str, str] | None = None,
        db_path: Path | None = None,
    ):
        self.workdir = workdir
        self.port = free_port()
        self.db_path = db_path or workdir / "usage.db"
        self.log_path = workdir / f"{program.name}-{self.port}.log"
        self._log = self.log_path.open("wb")
        cmd = mitmdump_command(self.port, "--set", f"llm_usage_db={self.db_path}", *args, program=program)
        if program == MITMWEB:
            self.web_port = free_port()
            cmd += ["--set", f"web_port={self.web_port}", "--set", "web_open_browser=false"]
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            wait_for_port(self.port, proc=self.proc)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise RuntimeError(f"proxy failed to start:\n{self.output()}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def printed(self, text: str, timeout: float = 10.0) -> bool:
        """Has mitmdump printed ``text`` (within ``timeout``: a line comes after its row)?"""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    # ---------------------------------------------------------------- rows

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params or {})]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def max_id(self) -> int:
        rows = self.query("select coalesce(max(id), 0) as m from requests")
        return int(rows[0]["m"]) if rows else 0

    def rows_after(self, after_id: int, count: int, timeout: float = 10.0, since: float = 0.0) -> list[dict[str, Any]]:
        """Wait until ``count`` rows newer than ``after_id`` (of calls started at or after
        ``since``) are written, and return them."""
        sql = "select * from requests where id > :after and timestamp >= :since order by id"
        params = {"after": after_id, "since": since - 0.001}
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.query(sql, params)
            if len(rows) >= count:
                time.sleep(0.05)  # a chance for an unexpected extra row to show up too
                return self.query(sql, params)
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} new row(s) after id {after_id}, got {len(rows)}:\n{self.output()[-3000:]}"
        )
