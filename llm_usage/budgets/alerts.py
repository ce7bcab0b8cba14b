"""Budget alerts that reach a person: a line in the proxy's output, the dashboard's banner
(the recent ones, from ``/stats/budgets``), and, when the budgets file names one, a webhook.

The webhook gets a Slack- or Discord-compatible ``{"text": ...}`` JSON body (Discord also
reads ``content``). It is posted from a thread of its own, so it never delays traffic;
each attempt times out after ``TIMEOUT_SECONDS``, a failure is retried ``ATTEMPTS`` times
with growing pauses and then logged -- never raised.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import deque

from .tracker import Alert

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
ATTEMPTS = 3
PAUSES = (1.0, 3.0)
RECENT = 20


class Alerts:
    def __init__(self, webhook: str | None) -> None:
        self.webhook = webhook
        self.recent: deque[Alert] = deque(maxlen=RECENT)
        self._queue: queue.SimpleQueue[Alert | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if webhook:
            self._thread = threading.Thread(target=self._post_all, name="llm-usage-webhook", daemon=True)
            self._thread.start()

    def __call__(self, alert: Alert) -> None:
        logger.warning("%s", alert.text)
        self.recent.append(alert)
        if self._thread is not None:
            self._queue.put(alert)

    def close(self, timeout: float = 2.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _post_all(self) -> None:
        while (alert := self._queue.get()) is not None:
            self._post(alert)

    def _post(self, alert: Alert) -> None:
        assert self.webhook is not None
        body = json.dumps({"text": alert.text, "content": alert.text}).encode()
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(
                self.webhook, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:  # refused, timed out, DNS, a bad URL
                problem = str(exc) or type(exc).__name__
            if attempt + 1 < ATTEMPTS:
                time.sleep(PAUSES[min(attempt, len(PAUSES) - 1)])
        logger.error(
            "llm-usage: the budget webhook failed %d times (%s); the alert was: %s", ATTEMPTS, problem, alert.text
        )
