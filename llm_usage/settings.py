"""The ``llm_usage_*`` options and what they configure: providers, prices, the database.

Option defaults come from the environment (and a ``.env`` in the working directory);
an explicit ``--set`` wins. Every value is validated in ``configure``: a bad file or key
raises ``OptionsError`` naming it, so mitmproxy refuses to start with it.

It also sets what reverse mode with a per-path upstream needs: mitmproxy's default
``connection_strategy=eager`` connects to the ``--mode reverse:`` URL before the request
is read, which fails (or wastes a connection) when every request goes elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Set

from mitmproxy import ctx, exceptions, http
from mitmproxy.hooks import UpdateHook

from .accountant import AccountantConfig, AccountantProcess, LocalAccountant
from .calllog import CallLineLog
from .config import (
    ConfigError,
    Provider,
    check_price_scopes,
    env_default,
    load_price_tables,
    load_providers,
    read_dotenv,
)
from .pricing import Pricer, warm_up_prices
from .storage import open_database

logger = logging.getLogger(__name__)

DB_OPTION = "llm_usage_db"
PROVIDERS_OPTION = "llm_usage_providers"
PRICING_OPTION = "llm_usage_pricing"
OLLAMA_OPTION = "llm_usage_ollama_base_url"


def _shows_flows() -> bool:
    """Whether this mitmproxy shows its flows (mitmweb's view), and so their comments."""
    return ctx.master.addons.get("view") is not None


class Settings:
    def __init__(self, in_process: bool = False) -> None:
        """``in_process``: account for calls on a thread of this process, never in the
        helper process (tests of the hooks; mitmweb always does, see ``accountant.py``)."""
        self.in_process = in_process
        self.providers: dict[str, Provider] = {}
        self.pricer = Pricer({}, {})
        self.accountant: LocalAccountant | AccountantProcess | None = None
        self.call_lines = CallLineLog()
        self._running = False
        self._refused = False
        self._announce: Callable[[http.HTTPFlow], None] | None = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        dotenv = read_dotenv()
        loader.add_option(
            DB_OPTION,
            str,
            env_default("PROXY_DB_PATH", "./usage.db", dotenv),
            "SQLite file the requests are logged to (env PROXY_DB_PATH).",
        )
        loader.add_option(PROVIDERS_OPTION, str, "", "YAML file merged per slug over the built-in providers.yaml.")
        loader.add_option(
            PRICING_OPTION,
            str,
            "",
            "YAML or JSON file of prices (USD per million tokens) that win over the built-in ones.",
        )
        loader.add_option(
            OLLAMA_OPTION,
            str,
            env_default("OLLAMA_BASE_URL", "http://localhost:11434", dotenv),
            "Upstream of the ollama slug (env OLLAMA_BASE_URL).",
        )

    def configure(self, updated: Set[str]) -> None:
        if "connection_strategy" in updated and ctx.options.connection_strategy == "eager":
            ctx.options.connection_strategy = "lazy"
            logger.info(
                "llm-usage: connection_strategy set to lazy: each request is routed by its path, "
                "so no connection is opened before the request is read"
            )
        if updated & {PROVIDERS_OPTION, OLLAMA_OPTION}:
            try:
                self.providers = load_providers(
                    ctx.options.llm_usage_providers, {OLLAMA_OPTION: ctx.options.llm_usage_ollama_base_url}
                )
            except ConfigError as exc:
                self._reject(f"llm_usage_providers: {exc}")
        if updated & {PRICING_OPTION, PROVIDERS_OPTION, OLLAMA_OPTION}:
            pricing_file = ctx.options.llm_usage_pricing
            try:
                user, builtin = load_price_tables(pricing_file)
                check_price_scopes(user, self.providers, pricing_file)
                check_price_scopes(builtin, self.providers, "pricing.yaml")
            except ConfigError as exc:
                self._reject(f"llm_usage_pricing: {exc}")
            else:
                self.pricer = Pricer(user, builtin)
                if pricing_file and PRICING_OPTION in updated:
                    logger.info("llm-usage: prices from %s win over the built-in ones", pricing_file)
        verbosity_changed = "termlog_verbosity" in updated and "termlog_verbosity" in ctx.options
        if verbosity_changed:
            self.call_lines.set_verbosity(ctx.options.termlog_verbosity)
        if self._refused:  # at start-up: mitmproxy exits after this; start nothing
            return
        if DB_OPTION in updated:
            if self._usable_database(ctx.options.llm_usage_db):
                self._open_accountant()
                logger.info("llm-usage: logging requests to %s", ctx.options.llm_usage_db)
        elif self.accountant is not None and (
            updated & {PRICING_OPTION, PROVIDERS_OPTION}
            or (verbosity_changed and isinstance(self.accountant, AccountantProcess))
        ):
            self._open_accountant()  # it prices (and the helper prints) with what it was started with

    def _usable_database(self, path: str) -> bool:
        if not path:
            self._reject("llm_usage_db: must name a SQLite file")
            return False
        try:
            open_database(path).close()  # fail at start, naming the file, if it is unusable
        except Exception as exc:  # noqa: BLE001 - sqlite3/OSError/corrupt file: all refuse the option
            self._reject(f"llm_usage_db: cannot use {path!r}: {exc}")
            return False
        return True

    def _open_accountant(self) -> None:
        if self.accountant is not None:
            old, self.accountant = self.accountant, None
            old.close()  # every row it was given is written before the next one starts
        path = ctx.options.llm_usage_db

        def local() -> LocalAccountant:
            return LocalAccountant(path, self.pricer, self.call_lines, self.announce_change)

        if self.in_process or _shows_flows():  # mitmweb: comments at once
            self.accountant = local()
        else:
            verbosity = ctx.options.termlog_verbosity if "termlog_verbosity" in ctx.options else "info"
            config = AccountantConfig(path, ctx.options.llm_usage_pricing, verbosity)
            try:
                self.accountant = AccountantProcess(config, fallback=local)
            except OSError as exc:
                logger.error("llm-usage: cannot start the accountant process (%s); accounting in the proxy", exc)
                self.accountant = local()

    def _reject(self, message: str) -> None:
        """Refuse a bad value. While running, mitmproxy rolls the option back on
        ``OptionsError``. At start-up a script's exception would be printed as a traceback,
        so the message is logged as an error instead -- and mitmproxy's start-up error
        check exits ("Error logged during startup, exiting...")."""
        if self._running:
            raise exceptions.OptionsError(message)
        self._refused = True
        logger.error("llm-usage: %s", message)

    def announce_change(self, flow: http.HTTPFlow) -> None:
        """Tell mitmproxy (from any thread) that a flow changed, so mitmweb shows its new
        comment. mitmdump has no view of flows: nothing to tell."""
        if self._announce is not None:
            self._announce(flow)

    def running(self) -> None:
        self._running = True
        if _shows_flows():
            loop, trigger = ctx.master.event_loop, ctx.master.addons.trigger

            def announce(flow: http.HTTPFlow) -> None:
                loop.call_soon_threadsafe(trigger, UpdateHook([flow]))

            self._announce = announce
        if isinstance(self.accountant, LocalAccountant):
            warm_up_prices()  # genai-prices' data (~40,000 objects) now, not during the first call
        host = ctx.options.listen_host or "localhost"
        if host in ("0.0.0.0", "::"):
            host = "localhost"
        port = ctx.options.listen_port or 8080
        self.call_lines(
            [
                f"proxy on http://{host}:{port}/<provider>/... (providers: {', '.join(sorted(self.providers))})",
                f"dashboard on http://{host}:{port}/dashboard, requests logged to {ctx.options.llm_usage_db}",
            ]
        )

    def done(self) -> None:
        if self.accountant is not None:
            self.accountant.close()
            self.accountant = None
