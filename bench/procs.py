"""The processes a benchmark run needs: the mock upstream and the mitmdumps.

Each runs in its own process (no GIL shared with the load generator or each other),
listens on 127.0.0.1 only, writes its output to a log file in the work directory, and is
stopped by its own process id when the run ends.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.harness import free_port, mitmdump_command, providers_file, wait_for_port  # noqa: E402

BIN = Path(sys.executable).parent
MITMDUMP = BIN / "mitmdump"
MOCK_SCRIPT = ROOT / "bench" / "mock_server.py"
"""tests/mock_upstream.py run standalone, plus the X-Mock-Event-Bytes knob (see there)."""


class Service:
    """One child process listening on a local port."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.name = name
        self.port = port
        self.cmd = cmd
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        try:
            wait_for_port(port, timeout=30, proc=self.proc)
        except (OSError, RuntimeError, TimeoutError):
            self.stop()
            raise RuntimeError(f"{name} failed to start ({' '.join(cmd)}):\n{self.output()[-3000:]}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


def start_mock(workdir: Path) -> Service:
    port = free_port()
    return Service("mock", [sys.executable, str(MOCK_SCRIPT), "--port", str(port)], port, workdir)


def start_bare(workdir: Path, mock_port: int, name: str, extra: list[str] | None = None) -> Service:
    """mitmdump in reverse mode with no addon at all (mitmproxy's own cost only).

    ``connection_strategy=lazy`` as the addon sets it for itself, so both open the upstream
    connection at the same moment (after the request is read).
    """
    port = free_port()
    cmd = mitmdump_command(
        port,
        "--set",
        "flow_detail=0",
        "--set",
        "connection_strategy=lazy",
        *(extra or []),
        program=MITMDUMP,
        addon=False,
        mode=f"reverse:http://127.0.0.1:{mock_port}",
    )
    return Service(name, cmd, port, workdir)


def start_addon(workdir: Path, mock_port: int) -> tuple[Service, Path]:
    """``mitmdump -s addon.py`` exactly as ``make run`` starts it, every provider re-pointed
    at the mock; returns the service and its database path."""
    port = free_port()
    db = workdir / "usage.db"
    providers = providers_file(workdir, f"http://127.0.0.1:{mock_port}")
    cmd = mitmdump_command(
        port,
        "--set",
        "flow_detail=0",
        "--set",
        f"llm_usage_db={db}",
        "--set",
        f"llm_usage_providers={providers}",
        program=MITMDUMP,
    )
    return Service("addon", cmd, port, workdir), db


# ------------------------------------------------------------------ the addon's database


def query(db: Path, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(conn.execute(sql, params or {}))
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def max_id(db: Path) -> int:
    rows = query(db, "select coalesce(max(id), 0) from requests")
    return int(rows[0][0]) if rows else 0


def rows_after(db: Path, after_id: int, expected: int, timeout: float = 15.0) -> list[tuple[Any, ...]]:
    """(endpoint, streaming, status_code, usage_status, error) of the rows newer than
    ``after_id``, once ``expected`` of them are there (or the timeout passes); then a short
    grace period so an unexpected extra row would show too."""
    sql = "select endpoint, streaming, status_code, usage_status, error from requests where id > :a order by id"
    deadline = time.monotonic() + timeout
    rows = query(db, sql, {"a": after_id})
    while len(rows) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = query(db, sql, {"a": after_id})
    time.sleep(0.3)
    return query(db, sql, {"a": after_id})


# ------------------------------------------------------------------ memory


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB (Linux /proc), None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used (Linux /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Live child processes (the addon's accountant process)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def children_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(kid) or 0.0 for kid in children(pid))


def family_rss_kb(pid: int) -> int:
    """RSS of a process and its children together: what it costs the machine."""
    return (rss_kb(pid) or 0) + sum(rss_kb(kid) or 0 for kid in children(pid))


def machine_busy_seconds() -> float | None:
    """CPU-seconds all CPUs of the machine spent busy since boot (Linux /proc/stat)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
