"""The accountant: turns finished calls (``CallRecord``) into rows, off mitmproxy's event loop.

Two ways, one interface (``submit``, ``close``):

- ``AccountantProcess`` (mitmdump): a helper process (``main`` below, started by ``_BOOT``)
  parses, prices, writes and prints each call's line. Why a process: mitmproxy's event
  loop and any thread of ours share one GIL, so work moved to a thread still takes turns
  with the proxy; in a process of its own it costs the proxy nothing but one pickle per
  call. Records go down a pipe in batches every 50 ms. The helper runs in a session of
  its own (a terminal's Ctrl+C reaches only the proxy), ignores SIGINT and SIGTERM, and
  stops when the pipe closes (``close``, or the proxy dies), after writing every row it
  was sent. If it cannot start or stops early, rows are built in this
  process instead, loudly.
- ``LocalAccountant`` (mitmweb, tests, the fallback): the writer thread builds the rows,
  and each line becomes its flow's comment at once (mitmweb shows comments; mitmdump
  shows nothing of them, so the process does not send lines back).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from .accounting import CallRecord, Row, account
from .calllog import CallLineLog
from .config import load_price_tables
from .pricing import Pricer, warm_up_prices
from .storage import UsageWriter

if TYPE_CHECKING:  # the helper process never loads mitmproxy's flow machinery (~18 MiB)
    from mitmproxy import http

logger = logging.getLogger(__name__)

SEND_INTERVAL_SECONDS = 0.05
MAX_UNSENT = 100_000
"""Records kept while the helper does not read; older ones are dropped (and counted)."""
_FRAME = struct.Struct("!I")
_BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "import sys; from llm_usage.accountant import main; sys.exit(main(sys.argv))"
)
"""The helper's entry: signals are ignored before the imports (which take a moment), so a
signal meant for the proxy cannot cut the helper short while it starts."""
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class Accountant(Protocol):
    def submit(self, record: CallRecord, flow: http.HTTPFlow) -> None: ...
    def close(self, timeout: float = 30.0) -> None: ...


@dataclass(frozen=True)
class AccountantConfig:
    """What the helper process needs to build and write rows (all plain, for JSON)."""

    db_path: str
    pricing_file: str
    quiet: bool


class LocalAccountant:
    """Rows built and written on this process's writer thread."""

    def __init__(
        self,
        db_path: str,
        pricer: Pricer,
        call_lines: Callable[[list[str]], None],
        announce: Callable[[http.HTTPFlow], None] | None = None,
    ) -> None:
        self.pricer = pricer
        self.announce = announce
        self.writer = UsageWriter(db_path, on_lines=call_lines)
        self.path = db_path

    def submit(self, record: CallRecord, flow: http.HTTPFlow | None) -> None:
        self.writer.submit_job(partial(self._build, record, flow))

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.writer.close(timeout)

    def _build(self, record: CallRecord, flow: http.HTTPFlow | None) -> tuple[Row, str | None]:
        row, line, warnings = account(record, self.pricer)
        if flow is not None:
            flow.comment = line  # mitmweb shows it beside the flow
            if self.announce is not None:
                self.announce(flow)
        for warning in warnings:
            logger.warning("llm-usage: %s %s: %s", record.provider, record.path, warning)
        return row, line


class AccountantProcess:
    """Parent side of the helper process: batches records down its stdin."""

    def __init__(self, config: AccountantConfig, fallback: Callable[[], LocalAccountant]) -> None:
        self.config = config
        self._fallback_factory = fallback
        self._fallback: LocalAccountant | None = None
        self._unsent: deque[CallRecord] = deque()  # appended on the event loop, taken by the sender
        self._wake = threading.Event()
        self._stopping = False
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, json.dumps(asdict(config))],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl+C goes to the proxy alone, which then closes the pipe
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
            },
        )
        self._sender = threading.Thread(target=self._send_loop, name="llm-usage-sender", daemon=True)
        self._sender.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def submit(self, record: CallRecord, flow: http.HTTPFlow) -> None:
        if self._fallback is not None:
            self._fallback.submit(record, flow)
            return
        self._unsent.append(record)
        if not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        self._stopping = True
        self._wake.set()
        self._sender.join(timeout)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.error("llm-usage: the accountant process did not finish within %.0fs; rows may be lost", timeout)
            self._proc.kill()
        if self._fallback is not None:
            self._fallback.close(timeout)

    def _send_loop(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        while True:
            self._wake.wait()
            if not self._stopping:
                time.sleep(SEND_INTERVAL_SECONDS)  # let a batch gather: one write for many calls
            self._wake.clear()
            batch = _take_all(self._unsent)
            if len(batch) > MAX_UNSENT:
                logger.error(
                    "llm-usage: dropped %d unsent call(s): the accountant is not keeping up", len(batch) - MAX_UNSENT
                )
                batch = batch[-MAX_UNSENT:]
            if batch and not self._send(stdin, batch):
                return
            if self._stopping and not self._unsent:
                _close_quietly(stdin)
                return

    def _send(self, stdin: IO[bytes], batch: list[CallRecord]) -> bool:
        try:
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.write(_FRAME.pack(len(data)) + data)
            stdin.flush()
            return True
        except (OSError, ValueError) as exc:  # the helper is gone
            _close_quietly(stdin)
            code = self._proc.poll()
            logger.error(
                "llm-usage: the accountant process stopped (%s); calls are now accounted in the proxy itself",
                f"exit code {code}" if code is not None else exc,
            )
            self._fallback = fallback = self._fallback_factory()
            for record in batch:
                fallback.submit(record, None)
            time.sleep(SEND_INTERVAL_SECONDS)  # a submit that had not yet seen the fallback
            for record in _take_all(self._unsent):
                fallback.submit(record, None)
            return False


def _take_all(queue: deque[CallRecord]) -> list[CallRecord]:
    """Everything queued so far (deque pops are atomic: no lock against the event loop)."""
    return [queue.popleft() for _ in range(len(queue))]


def _close_quietly(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except OSError:  # unsent bytes to a helper that is gone
        try:
            stream.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the helper process


def _read_frames(stream: IO[bytes]) -> Any:
    while True:
        head = stream.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return
        (size,) = _FRAME.unpack(head)
        data = stream.read(size)
        if len(data) < size:
            return
        yield pickle.loads(data)


def main(argv: list[str]) -> int:
    """Read record batches from stdin until it closes; write every row; exit."""
    # The proxy decides when to stop (it closes the pipe): a signal meant for the proxy
    # must not cut the rows still in flight (also set by _BOOT, before the imports).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s.%(msecs)03d] %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    nice = getattr(os, "nice", None)  # POSIX only
    if nice is not None:
        try:  # behind the proxy when they share a CPU: a row can wait, the user's traffic cannot
            nice(10)
        except OSError:
            pass
    try:
        config = AccountantConfig(**json.loads(argv[1]))
        user, builtin = load_price_tables(config.pricing_file)
    except Exception as exc:  # noqa: BLE001 - the proxy checked all this before starting us: one line
        logger.error("llm-usage: the accountant process cannot start: %s", exc)
        return 1
    pricer = Pricer(user, builtin)
    warm_up_prices()
    call_lines = CallLineLog()
    call_lines.enabled = not config.quiet
    writer = UsageWriter(config.db_path, on_lines=call_lines)
    try:
        for batch in _read_frames(sys.stdin.buffer):
            for record in batch:
                row, line, warnings = account(record, pricer)
                for warning in warnings:
                    logger.warning("llm-usage: %s %s: %s", record.provider, record.path, warning)
                writer.submit(row, line)
    finally:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
