"""The one readable line per call, printed the way mitmdump prints its own log.

It does not go through the root logger: every record there also becomes a deprecated
``add_log`` hook dispatched to every addon on mitmproxy's event loop -- about a third of
the addon's cost per call. The writer thread prints a batch at a time, so the event loop
pays nothing. ``mitmdump -q`` (``termlog_verbosity=error``) silences it like the rest of
mitmdump's output; ``warn`` (what ``make run`` uses to hide per-connection lines) keeps
it. In mitmweb the same line is the flow's comment.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

_QUIET_LEVELS = {"error"}


class CallLineLog:
    """Writes a batch of lines at once, each as ``[HH:MM:SS.mmm] llm-usage: <line>``
    (mitmdump's own format), with one write and one flush per batch."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.enabled = True

    def set_verbosity(self, termlog_verbosity: str) -> None:
        self.enabled = termlog_verbosity not in _QUIET_LEVELS

    def __call__(self, lines: Sequence[str]) -> None:
        if not self.enabled or not lines:
            return
        stamp = datetime.now().strftime("[%H:%M:%S.%f")[:-3] + "] llm-usage: "
        stream = self.stream or sys.stdout
        stream.write("".join(f"{stamp}{line}\n" for line in lines))
        stream.flush()
