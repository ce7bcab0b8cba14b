"""The one addon object ``addon.py`` hands to mitmproxy.

Each concern is its own class (``Settings``, ``WebUI``, ``Router``, ``UsageRecorder``);
mitmproxy sees a single object whose hooks are theirs. Why one object: for every event
(eight per proxied call, counting the ``update`` after each hook) mitmproxy walks every
addon of a script and looks each hook up on it; with four objects that walk cost about
20 us per call, a sixth of what the addon adds.
"""

from __future__ import annotations

from collections.abc import Coroutine, Set
from typing import Any

from mitmproxy import http

from .recorder import UsageRecorder
from .router import Router
from .settings import Settings
from .web import WebUI


class LlmUsage:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.web = WebUI()
        self.router = Router(self.settings)
        self.recorder = UsageRecorder(self.settings)
        # The per-flow hooks that need no combining are the components' own bound methods:
        # no extra call in between.
        self.responseheaders = self.recorder.responseheaders
        self.response = self.recorder.response
        self.error = self.recorder.error

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        self.settings.load(loader)
        self.web.load(loader)

    def configure(self, updated: Set[str]) -> None:
        self.settings.configure(updated)  # options first: the web pages read them
        self.web.configure(set(updated))

    def running(self) -> None:
        self.settings.running()

    def done(self) -> None:
        self.web.done()
        self.settings.done()

    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """The proxy's own pages answer reserved paths (mitmproxy awaits the reply);
        everything else is routed."""
        reply = self.web.request(flow)
        if reply is not None:
            return reply
        self.router.request(flow)
        return None


def make_addons() -> list[object]:
    return [LlmUsage()]
