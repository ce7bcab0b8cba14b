"""The one readable line per call, printed the way mitmdump prints its own log.

It goes through its own logger (not propagated to the root logger), because every record
on the root logger also becomes a deprecated ``add_log`` hook dispatched to every addon on
mitmproxy's event loop -- about a third of the addon's cost per call. The writer thread
prints it, so the event loop pays nothing; ``mitmdump -q`` (``termlog_verbosity`` above
``info``) silences it like the rest of mitmdump's output. In mitmweb the same line is the
flow's comment.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from mitmproxy.log import MitmFormatter

CALLS_LOGGER = "llm_usage.calls"
_QUIET_LEVELS = {"error", "warn", "alert"}


class CallLineLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.logger = logging.getLogger(CALLS_LOGGER)
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if not self.logger.handlers:
            handler = logging.StreamHandler(stream or sys.stdout)
            handler.setFormatter(MitmFormatter(False))
            self.logger.addHandler(handler)
        self.enabled = True

    def set_verbosity(self, termlog_verbosity: str) -> None:
        self.enabled = termlog_verbosity not in _QUIET_LEVELS

    def __call__(self, line: str) -> None:
        if self.enabled:
            self.logger.info("llm-usage: %s", line)
