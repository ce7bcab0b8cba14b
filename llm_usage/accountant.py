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
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
_ACK = struct.Struct("!Q")
FRAME_RECORDS = 256
"""Records per frame: a frame (bodies included) stays small, and is acknowledged whole."""
_BOOT = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "import sys; from llm_usage.accountant import main; sys.exit(main(sys.argv))"
)
"""The helper's entry: signals are ignored before the imports (which take a moment), so a
signal meant for the proxy cannot cut the helper short while it starts."""
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class AccountantConfig:
    """What the helper process needs to build and write rows (all plain, for JSON)."""

    db_path: str
    pricing_file: str
    termlog_verbosity: str
    """mitmproxy's: the helper prints and logs as much as mitmdump would."""


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

    @property
    def path(self) -> str:
        return self.writer.path

    def submit(self, record: CallRecord, flow: http.HTTPFlow | None) -> None:
        self.writer.submit_job(partial(self._build, record, flow))

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        self.writer.close(timeout)

    def _build(self, record: CallRecord, flow: http.HTTPFlow | None) -> tuple[Row, str | None]:
        row, line = _account_and_warn(record, self.pricer)
        if flow is not None:
            try:
                flow.comment = line  # mitmweb shows it beside the flow
                if self.announce is not None:
                    self.announce(flow)
            except Exception:  # e.g. mitmweb's loop already closed: the row still counts
                logger.debug("llm-usage: could not update the flow's comment", exc_info=True)
        return row, line


def _account_and_warn(record: CallRecord, pricer: Pricer) -> tuple[Row, str]:
    """``account``, with the parser's warnings logged against the call."""
    row, line, warnings = account(record, pricer)
    for warning in warnings:
        logger.warning("llm-usage: %s %s: %s", record.provider, record.path, warning)
    return row, line


class _HelperExited(Exception):
    """The helper process is gone (its exit code is the message)."""


class AccountantProcess:
    """Parent side of the helper process.

    Records are numbered in frames of at most ``FRAME_RECORDS``; the helper acknowledges
    a frame (on a pipe of its own) once its rows are committed. Frames not yet
    acknowledged are kept, so if the helper dies nothing it was sent is lost: they are
    accounted in this process instead, with whatever was still to send.
    """

    def __init__(self, config: AccountantConfig, fallback: Callable[[], LocalAccountant]) -> None:
        self._fallback_factory = fallback
        self._fallback: LocalAccountant | None = None
        self._lock = threading.Lock()  # submit vs. the switch to the fallback
        self._unsent: deque[CallRecord] = deque()
        self._dropped = 0
        self._unacked: deque[tuple[int, list[CallRecord]]] = deque()
        self._seq = 0
        self._acks = b""
        self._wake = threading.Event()
        self._stopping = False
        ack_read, ack_write = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, json.dumps({**asdict(config), "ack_fd": ack_write})],
                stdin=subprocess.PIPE,
                pass_fds=(ack_write,),
                start_new_session=True,  # a terminal's Ctrl+C goes to the proxy alone, which then closes the pipe
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
                },
            )
        except BaseException:
            os.close(ack_read)
            raise
        finally:
            os.close(ack_write)
        os.set_blocking(ack_read, False)
        self._ack_read = ack_read
        self._sender = threading.Thread(target=self._send_loop, name="llm-usage-sender", daemon=True)
        self._sender.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def submit(self, record: CallRecord, flow: http.HTTPFlow | None) -> None:
        with self._lock:
            if self._fallback is None:
                self._unsent.append(record)
                if len(self._unsent) > MAX_UNSENT:
                    self._unsent.popleft()
                    self._dropped += 1
                if not self._wake.is_set():
                    self._wake.set()
                return
        self._fallback.submit(record, flow)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is left, let the helper write it all and exit; never leaves a row behind
        (a helper that does not finish in time is killed and the rest accounted here)."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._sender.join(max(deadline - time.monotonic(), 0.0))
        if self._sender.is_alive() or self._proc.poll() is None:
            logger.error("llm-usage: the accountant process did not finish within %.0fs; stopping it", timeout)
            self._proc.kill()
            self._sender.join(10)  # it now accounts for what the helper had not confirmed
        self._proc.wait()
        if not self._sender.is_alive():
            os.close(self._ack_read)
        if self._fallback is not None:
            self._fallback.close(timeout)

    def _send_loop(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while True:
                self._wake.wait()
                if not self._stopping:
                    time.sleep(SEND_INTERVAL_SECONDS)  # let a batch gather: one write for many calls
                self._wake.clear()
                self._read_acks()
                if self._proc.poll() is not None:
                    raise _HelperExited(f"exit code {self._proc.returncode}")
                with self._lock:
                    batch = [self._unsent.popleft() for _ in range(len(self._unsent))]
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    logger.error("llm-usage: dropped %d call(s): the accountant process is not keeping up", dropped)
                frames = []
                for start in range(0, len(batch), FRAME_RECORDS):
                    self._seq += 1
                    frames.append((self._seq, batch[start : start + FRAME_RECORDS]))
                self._unacked.extend(frames)  # kept until confirmed, whatever happens next
                for frame in frames:
                    self._send(stdin, frame)
                if self._stopping and not self._unsent:
                    stdin.close()
                    self._proc.wait()  # close() bounds this: it kills a helper that takes too long
                    self._read_acks()
                    if self._unacked:
                        raise _HelperExited(f"exit code {self._proc.returncode}")
                    return
        except Exception as exc:  # noqa: BLE001 - whatever it was, no call may be lost to it
            self._fall_back(stdin, exc)

    @staticmethod
    def _send(stdin: IO[bytes], frame: tuple[int, list[CallRecord]]) -> None:
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        stdin.write(_FRAME.pack(len(data)))
        stdin.write(data)
        stdin.flush()

    def _read_acks(self) -> None:
        try:
            while chunk := os.read(self._ack_read, 4096):
                self._acks += chunk
        except BlockingIOError:
            pass
        size = _ACK.size
        whole = len(self._acks) - len(self._acks) % size
        for offset in range(0, whole, size):
            (seq,) = _ACK.unpack_from(self._acks, offset)
            while self._unacked and self._unacked[0][0] <= seq:
                self._unacked.popleft()
        self._acks = self._acks[whole:]

    def _fall_back(self, stdin: IO[bytes], reason: Exception) -> None:
        _close_quietly(stdin)
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._read_acks()
        with self._lock:
            self._fallback = fallback = self._fallback_factory()
            pending = [r for _seq, records in self._unacked for r in records] + list(self._unsent)
            self._unacked.clear()
            self._unsent.clear()
        why = str(reason) if isinstance(reason, _HelperExited) else f"{type(reason).__name__}: {reason}".rstrip(": ")
        logger.error(
            "llm-usage: the accountant process stopped (%s); calls are now accounted in the proxy itself"
            " (%d it had not confirmed or not yet received are accounted here)",
            why,
            len(pending),
        )
        for record in pending:
            fallback.submit(record, None)


def _close_quietly(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except OSError:  # unsent bytes to a helper that is gone
        try:
            stream.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the helper process


class _FrameReader:
    """Frames from the proxy's pipe, with a way to notice, while waiting on something
    else, that the proxy closed it (it is shutting down)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def _fill(self) -> None:
        chunk = os.read(self.fd, 1 << 16)
        if chunk:
            self.buf += chunk
        else:
            self.eof = True

    def closed(self) -> bool:
        """Whether the proxy has closed the pipe (reads what is there without blocking)."""
        try:
            while not self.eof and select.select([self.fd], [], [], 0)[0]:
                self._fill()
        except (OSError, ValueError):  # select() on a pipe is POSIX-only: just keep waiting
            return False
        return self.eof

    def __iter__(self) -> Iterator[Any]:
        while True:
            while len(self.buf) < _FRAME.size and not self.eof:
                self._fill()
            if len(self.buf) < _FRAME.size:
                return
            (size,) = _FRAME.unpack_from(self.buf)
            while len(self.buf) < _FRAME.size + size and not self.eof:
                self._fill()
            if len(self.buf) < _FRAME.size + size:
                return
            data = bytes(self.buf[_FRAME.size : _FRAME.size + size])
            del self.buf[: _FRAME.size + size]
            yield pickle.loads(data)


_LOG_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO, "alert": logging.INFO}


def main(argv: list[str]) -> int:
    """Read record frames from stdin until it closes; write every row; confirm each frame
    once its rows are committed; exit."""
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
        settings = json.loads(argv[1])
        ack_fd = settings.pop("ack_fd")
        config = AccountantConfig(**settings)
        user, builtin = load_price_tables(config.pricing_file)
    except Exception as exc:  # noqa: BLE001 - the proxy checked all this before starting us: one line
        logger.error("llm-usage: the accountant process cannot start: %s", exc)
        return 1
    logging.getLogger().setLevel(_LOG_LEVELS.get(config.termlog_verbosity, logging.DEBUG))
    pricer = Pricer(user, builtin)
    warm_up_prices()
    call_lines = CallLineLog()
    call_lines.set_verbosity(config.termlog_verbosity)
    writer = UsageWriter(config.db_path, on_lines=call_lines)
    proxy = os.getppid()
    frames = _FrameReader(sys.stdin.fileno())
    try:
        for seq, records in frames:
            for record in records:
                writer.submit(*_account_and_warn(record, pricer))
            while not writer.flush(1.0):  # committed (a failing database is retried meanwhile)
                if frames.closed() or os.getppid() != proxy:
                    # The proxy is stopping (or gone) while the database fails: do not hold
                    # it up; the writer says how many rows it could not write.
                    return 1
            os.write(ack_fd, _ACK.pack(seq))
    finally:
        writer.close(timeout=5.0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
