"""The one addon object ``addon.py`` hands to mitmproxy, and the order its parts run in.

Each concern is its own class: ``Settings`` (options), ``WebUI`` (the proxy's own pages),
``Router`` (``/<provider>/...`` upstream), ``Capture`` (one record per call). For each
proxied request the web pages look first (they answer reserved paths), then the router;
a routed call is captured until ``response`` or ``error``, and its record becomes a row
on the writer thread, where mitmweb also gets the call's line as the flow's comment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Set
from decimal import Decimal
from functools import partial
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.hooks import UpdateHook

from ..accounting.account import account
from ..accounting.pricing import Pricer
from ..accounting.record import CallRecord
from ..accounting.row import Row
from ..web.pages import WebUI
from .capture import Capture
from .https_proxy import TunnelOtherHosts, on_reverse_listener, own_services_refusal
from .limits import RateLimitBoard
from .routing import RoutedCall, Router, budget_message
from .settings import Settings
from .sockets import refusal_event

logger = logging.getLogger(__name__)


class LlmUsage:
    def __init__(self) -> None:
        self.settings = Settings()
        self.web = WebUI()
        self.web.writer_problem = self._writer_problem
        self.web.key_labels = lambda: self.settings.key_labels
        self.web.budgets = self._budgets
        self.limits = RateLimitBoard()
        """The latest rate-limit headers per provider and key (``/stats/limits``)."""
        self.web.limits = self.limits.snapshot
        self.router = Router(self.settings)
        self.next_layer = TunnelOtherHosts(lambda: self.settings.provider_hosts).next_layer
        """On the HTTPS_PROXY listener, only the providers' hosts are decrypted (``https_proxy.py``)."""
        self.capture = Capture(self.submit, self._refuse_on_socket)
        self._announce: Callable[[http.HTTPFlow], object] | None = None
        # The per-flow hooks that need nothing more are the capture's own.
        self.response = self.capture.response
        self.error = self.capture.error
        self.websocket_message = self.capture.websocket_message
        self.websocket_end = self.capture.websocket_end

    def _refuse_on_socket(self, call: RoutedCall, request: bytes) -> bytes | None:
        """A ``response.create`` on an open socket when a blocking budget is used up: the
        error event that refuses it (the socket's opening was checked by the router)."""
        budgets = self.settings.budgets
        if budgets is None:
            return None
        facts = call.budget_facts()
        if budgets.needs_model:
            facts["model"] = call.format.model_requested_in(call.path, request)
        refused = budgets.refusal(facts)
        if refused is None:
            return None
        message, _ = budget_message(*refused)
        event = refusal_event(request, message)
        if event is not None:
            logger.warning("llm-usage: refused a call on a WebSocket to %s: budget %r reached", call.provider.slug,
                           refused[0].name)  # fmt: skip
        return event

    def _budgets(self) -> dict[str, Any]:
        budgets, alerts = self.settings.budgets, self.settings.alerts
        if budgets is None:
            return {}
        recent = [
            {"budget": a.budget, "share": float(a.share), "text": a.text, "at": a.at.isoformat(timespec="seconds")}
            for a in (alerts.recent if alerts is not None else ())
        ]
        return {"budgets": budgets.status(), "alerts": recent[::-1]}

    def _writer_problem(self) -> str | None:
        writer = self.settings.writer
        return "no database is open" if writer is None else writer.problem

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        self.settings.load(loader)
        self.web.load(loader)

    def configure(self, updated: Set[str]) -> None:
        self.settings.configure(updated)  # options first: the web pages read them
        self.web.configure(set(updated))

    def running(self) -> None:
        self.settings.running()
        if ctx.master.addons.get("view") is not None:  # mitmweb: show each flow's new comment at once
            loop, trigger = ctx.master.event_loop, ctx.master.addons.trigger
            self._announce = lambda flow: loop.call_soon_threadsafe(trigger, UpdateHook([flow]))

    def done(self) -> None:
        self.web.done()
        self.capture.close()  # calls still under way get their rows before the writer closes
        self.settings.stop_price_updates()
        self.settings.close_writer()  # every row handed over is written before mitmproxy exits
        self.settings.close_otlp()  # then the last metrics and spans, within a few seconds
        if self.settings.alerts is not None:
            self.settings.alerts.close()  # a webhook still being posted gets its moment

    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """The proxy's own pages answer reserved paths (mitmproxy awaits the reply);
        everything else is routed."""
        if on_reverse_listener(flow):  # on the HTTPS_PROXY listener, /stats is a provider's path
            reply = self.web.request(flow)
            if reply is not None or flow.response is not None:
                return reply
        else:
            refused = own_services_refusal(flow, self.settings.provider_hosts)
            if refused is not None:
                flow.response = refused
                return None
        call = self.router.request(flow)
        if call is not None:
            self.capture.begin(flow, call)
        return None

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """A call's stream is teed (``capture.py``); an export is streamed (``web/exports.py``)."""
        self.capture.responseheaders(flow)
        self.web.responseheaders(flow)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A CONNECT on the HTTPS_PROXY listener to this machine's own services is refused."""
        if not on_reverse_listener(flow):
            flow.response = own_services_refusal(flow, self.settings.provider_hosts)

    def submit(self, record: CallRecord, flow: http.HTTPFlow) -> None:
        """Hand a finished call to the writer, which builds its row (prices as of now)."""
        writer = self.settings.writer
        if writer is None:
            logger.error("llm-usage: no database open; not recorded: %s %s", record.provider.slug, record.path)
            return
        writer.submit(partial(self._build, record, flow, self.settings.pricer))

    def _build(self, record: CallRecord, flow: http.HTTPFlow, pricer: Pricer) -> tuple[Row, str]:
        """On the writer thread: the row, and the line as the flow's comment (mitmweb shows it;
        a socket's flow gets one line per call, in order)."""
        row, line = account(record, pricer)
        self.web.histograms.note(row)  # type: ignore[arg-type]
        otlp = self.settings.otlp
        if otlp is not None:
            otlp.note(row)
        if record.response_headers:
            self.limits.note(record.provider.slug, record.key_id, record.response_headers, record.ended_at)
        budgets = self.settings.budgets
        if budgets is not None and row["cost_usd"]:
            facts = {"provider": row["provider"], "model": row["model"], "client": row["client"],
                     "project": row["project"], "key": row["key_id"]}  # fmt: skip
            budgets.add(facts, Decimal(str(row["cost_usd"])), record.started_at)
        try:
            flow.comment = f"{flow.comment}\n{line}" if record.transport == "websocket" and flow.comment else line
            if self._announce is not None:
                self._announce(flow)
        except Exception:  # e.g. mitmweb's loop already closed: the row still counts
            logger.debug("llm-usage: could not update the flow's comment", exc_info=True)
        return row, line


def make_addons() -> list[object]:
    return [LlmUsage()]
