"""The ``llm_usage_*`` options and what they configure: providers, prices, the row writer.

Option defaults come from the environment (and a ``.env`` in the working directory);
an explicit ``--set`` wins. Every value is validated in ``configure``: a bad file or key
is refused with a message naming it, so mitmproxy does not start with it.

It also sets what reverse mode with a per-path upstream needs: mitmproxy's default
``connection_strategy=eager`` connects to the ``--mode reverse:`` URL before the request
is read, which fails (or wastes a connection) when every request goes elsewhere.
"""

from __future__ import annotations

import difflib
import logging
import sqlite3
import threading
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING

from genai_prices import UpdatePrices
from mitmproxy import ctx, exceptions
from mitmproxy.proxy import mode_specs

from ..accounting.keys import database_salt
from ..accounting.pricing import Pricer, warm_up_prices
from ..budgets.alerts import Alerts
from ..budgets.ledger import database_spend, fired_share, remember_share
from ..budgets.tracker import BudgetTracker
from ..config.budgets import load_budgets
from ..config.files import ConfigError, env_default, read_dotenv
from ..config.key_labels import load_key_labels
from ..config.prices import check_price_scopes, load_price_tables
from ..config.providers import Provider, load_providers
from ..store.schema import open_database
from ..store.writer import RowWriter
from ..telemetry.semconv import parse_endpoint
from .call_lines import CallLineLog
from .https_proxy import ProviderHosts, provider_hosts

if TYPE_CHECKING:  # the SDK is imported only when an endpoint is set
    from ..telemetry.otlp import OtlpExport

logger = logging.getLogger(__name__)

DB_OPTION = "llm_usage_db"
PROVIDERS_OPTION = "llm_usage_providers"
PRICING_OPTION = "llm_usage_pricing"
UPDATE_PRICES_OPTION = "llm_usage_update_prices"
SEED_PRICING = "pricing.json"
"""The seed's price override file: used from the working directory when no
``llm_usage_pricing`` is given."""
OLLAMA_OPTION = "llm_usage_ollama_base_url"
KEY_LABELS_OPTION = "llm_usage_key_labels"
BUDGETS_OPTION = "llm_usage_budgets"
OTLP_ENDPOINT_OPTION = "llm_usage_otlp_endpoint"
OTLP_SPANS_OPTION = "llm_usage_otlp_spans"
SWITCHES = frozenset({UPDATE_PRICES_OPTION, OTLP_SPANS_OPTION})
"""The yes/no options. Declared as text and read here: mitmproxy parses a ``--set`` value for
a script's option only once the script registered it, and a value its bool type rejects
(``=1``, ``=yes``) then unloads the whole addon without a word -- the proxy would run on,
recording nothing and refusing nothing."""
_SWITCH_VALUES = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
                  "0": False, "": False}  # fmt: skip


def switch(value: object) -> bool:
    """A yes/no option's value (``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``)."""
    if isinstance(value, bool):
        return value
    try:
        return _SWITCH_VALUES[str(value).strip().lower()]
    except KeyError:
        raise ValueError(f"must be true or false, not {str(value)[:40]!r}") from None


class Settings:
    """Owns what the options configure. ``writer`` is None until a database is configured
    (and again once the proxy is done)."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self.switches: dict[str, bool] = dict.fromkeys(SWITCHES, False)
        """The yes/no options' values (``switch``)."""
        self.provider_hosts: ProviderHosts = {}
        """What the HTTPS_PROXY listener decrypts and records (``https_proxy.py``)."""
        self.pricer = Pricer({}, {})
        self.writer: RowWriter | None = None
        self.key_labels: dict[str, str] = {}
        """key fingerprint -> the label the user gave it (``config/key_labels.py``)."""
        self.budgets: BudgetTracker | None = None
        """Spend per budget, kept current; None without a budgets file (``budgets/``)."""
        self.alerts: Alerts | None = None
        self.key_salt: bytes | None = None
        """The database's salt for key fingerprints (``accounting/keys.py``); None while
        it could not be read (a database locked at start): calls then get no ``key_id``."""
        self.call_lines = CallLineLog()
        self.otlp: OtlpExport | None = None
        """Each row as OpenTelemetry metrics (and spans) to a collector; None unless
        ``llm_usage_otlp_endpoint`` is set (``telemetry/otlp.py``)."""
        self._otlp_endpoint = ""
        self._running = False
        self._refused = False
        self._price_updates: UpdatePrices | None = None

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
            UPDATE_PRICES_OPTION,
            str,
            "false",
            "true: refresh genai-prices' price data hourly, in the background, from its published file "
            "(https://github.com/pydantic/genai-prices). false: the proxy itself makes no request anywhere.",
        )
        loader.add_option(
            OLLAMA_OPTION,
            str,
            env_default("OLLAMA_BASE_URL", "http://localhost:11434", dotenv),
            "Upstream of the ollama slug (env OLLAMA_BASE_URL).",
        )
        loader.add_option(
            BUDGETS_OPTION,
            str,
            "",
            "YAML file of spending budgets: limits per hour/day/week/month, alerts (output, "
            "dashboard, webhook) and, with action: block, a 429 for calls over the limit.",
        )
        loader.add_option(
            KEY_LABELS_OPTION,
            str,
            "",
            "YAML file of 'label: key fingerprint' lines naming API keys in the stats "
            "(a key's fingerprint: python -m llm_usage key-id).",
        )
        loader.add_option(
            OTLP_ENDPOINT_OPTION,
            str,
            "",
            "OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318; /v1/metrics and /v1/traces are appended) "
            "to export each call to as OpenTelemetry GenAI metrics. Headers for its auth: env "
            "OTEL_EXPORTER_OTLP_HEADERS. Empty: nothing is exported.",
        )
        loader.add_option(
            OTLP_SPANS_OPTION,
            str,
            "false",
            "true: with llm_usage_otlp_endpoint, also export one span per call (GenAI semantic conventions).",
        )

    def configure(self, updated: Set[str]) -> None:
        self._refuse_unknown_options()
        for name in updated & SWITCHES:
            try:
                self.switches[name] = switch(getattr(ctx.options, name))
            except ValueError as exc:
                self._reject(f"{name}: {exc}")
        if "connection_strategy" in updated and ctx.options.connection_strategy == "eager":
            ctx.options.connection_strategy = "lazy"
            logger.info(
                "llm-usage: connection_strategy set to lazy: each request is routed by its path, "
                "so no connection is opened before the request is read"
            )
        if "keep_host_header" in updated and not ctx.options.keep_host_header:
            # In reverse mode mitmproxy would replace the client's Host before any hook runs;
            # the proxy's own pages need it (web/hosts.py: DNS rebinding), and a routed call
            # gets its provider's Host from the router either way.
            ctx.options.keep_host_header = True
        if updated & {PROVIDERS_OPTION, OLLAMA_OPTION}:
            try:
                self.providers = load_providers(
                    ctx.options.llm_usage_providers, {OLLAMA_OPTION: ctx.options.llm_usage_ollama_base_url}
                )
                self.provider_hosts = provider_hosts(self.providers)
            except ConfigError as exc:
                self._reject(f"llm_usage_providers: {exc}")
        if updated & {PRICING_OPTION, PROVIDERS_OPTION, OLLAMA_OPTION}:
            self._load_prices(announce=PRICING_OPTION in updated)
        if KEY_LABELS_OPTION in updated:
            try:
                self.key_labels = load_key_labels(ctx.options.llm_usage_key_labels)
            except ConfigError as exc:
                self._reject(f"{KEY_LABELS_OPTION}: {exc}")
        if "termlog_verbosity" in updated and "termlog_verbosity" in ctx.options:
            self.call_lines.set_verbosity(ctx.options.termlog_verbosity)
        if DB_OPTION in updated and not self._refused:  # refused at start-up: mitmproxy exits; start nothing
            self._open_writer(ctx.options.llm_usage_db)
        if updated & {BUDGETS_OPTION, KEY_LABELS_OPTION, DB_OPTION} and not self._refused:
            self._load_budgets()
        if updated & {OTLP_ENDPOINT_OPTION, OTLP_SPANS_OPTION}:
            self._configure_otlp()

    def _configure_otlp(self) -> None:
        """Check the endpoint (and that the SDK is installed) now; the exporter itself starts
        in ``running`` -- its threads have nothing to send before -- or is replaced here when
        the options change while running."""
        value = ctx.options.llm_usage_otlp_endpoint
        try:
            endpoint = parse_endpoint(value) if value else ""
            if endpoint:
                from ..telemetry import otlp  # noqa: F401 - the SDK, loaded only when wanted
        except ValueError as exc:
            self._reject(f"{OTLP_ENDPOINT_OPTION}: {exc}")
            return
        except ImportError as exc:
            self._reject(f"{OTLP_ENDPOINT_OPTION}: needs the OpenTelemetry SDK (pip install -r requirements.txt): "
                         f"{exc}")  # fmt: skip
            return
        self._otlp_endpoint = endpoint
        if not endpoint and self.switches[OTLP_SPANS_OPTION]:
            logger.warning("llm-usage: %s is on but %s is empty: nothing is exported", OTLP_SPANS_OPTION,
                           OTLP_ENDPOINT_OPTION)  # fmt: skip
        current = self.otlp
        if not self._running or (current is not None and (current.endpoint, current.spans) == self._otlp_wanted()):
            return  # e.g. mitmproxy rolling back another option: the exporter stays as it is
        self.otlp = None
        if current is not None:  # its last export must not hold up the event loop
            threading.Thread(target=current.close, daemon=True, name="llm-usage-otlp-close").start()
        self._start_otlp()

    def _otlp_wanted(self) -> tuple[str, bool]:
        return self._otlp_endpoint, self.switches[OTLP_SPANS_OPTION]

    def _start_otlp(self) -> None:
        endpoint, spans = self._otlp_wanted()
        if not endpoint or self._refused:
            return
        from ..telemetry.otlp import OtlpExport

        self.otlp = OtlpExport(endpoint, spans=spans)
        logger.info(
            "llm-usage: exporting each call to %s as OpenTelemetry metrics%s", endpoint, " and spans" if spans else ""
        )

    def _load_prices(self, announce: bool) -> None:
        pricing_file = ctx.options.llm_usage_pricing
        if not pricing_file and Path(SEED_PRICING).is_file():
            pricing_file = SEED_PRICING  # the seed's override file, where it kept it
        try:
            user, builtin, tiers = load_price_tables(pricing_file)
            check_price_scopes(user, self.providers, pricing_file)
            check_price_scopes(builtin, self.providers, "pricing.yaml")
            check_price_scopes(tiers, self.providers, pricing_file or "pricing.yaml", "service_tiers")
        except ConfigError as exc:
            self._reject(f"llm_usage_pricing: {exc}")
            return
        self.pricer = Pricer(user, builtin, tiers)  # calls already handed to the writer keep the prices they had
        if pricing_file and announce:
            seed = " (found in the working directory; --set llm_usage_pricing=... to choose another)"
            logger.info(
                "llm-usage: prices from %s win over the built-in ones%s",
                pricing_file,
                seed if pricing_file == SEED_PRICING and not ctx.options.llm_usage_pricing else "",
            )

    def _open_writer(self, path: str) -> None:
        if self.writer is not None and self.writer.path == path:  # e.g. mitmproxy rolling back a refused value
            return
        if not path:
            self._reject("llm_usage_db: must name a SQLite file")
            return
        try:
            db = open_database(path)  # fail at start, naming the file, if it is unusable
            try:
                self.key_salt = database_salt(db.conn)
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                self._reject(f"llm_usage_db: cannot use {path!r}: {exc}")
                return
            # Held by another program for now: not a reason to refuse traffic. Rows wait in
            # the pending file until the writer can open it (store/writer.py).
            logger.warning("llm-usage: %s is locked by another program; rows wait until it is free", path)
        except Exception as exc:  # noqa: BLE001 - sqlite3/OSError/corrupt file: all refuse the option
            self._reject(f"llm_usage_db: cannot use {path!r}: {exc}")
            return
        self.close_writer()  # every row the old one was given is written first
        self.writer = RowWriter(path, on_lines=self.call_lines, key_salt=self.key_salt)
        logger.info("llm-usage: logging requests to %s", path)

    def _load_budgets(self) -> None:
        """The budgets, their spend so far this period read from the database (before this
        process adds a row to them), and where their alerts go."""
        path = ctx.options.llm_usage_budgets
        try:
            plan = load_budgets(path, self.key_labels)
        except ConfigError as exc:
            self._reject(f"{BUDGETS_OPTION}: {exc}")
            return
        if self.alerts is not None:
            self.alerts.close()
        if not plan.budgets:
            self.budgets = self.alerts = None
            return
        db = ctx.options.llm_usage_db
        self.alerts = Alerts(plan.webhook)
        try:
            self.budgets = BudgetTracker(
                plan,
                spend_of=lambda budget, start, end: database_spend(db, budget, start, end),
                fired_of=lambda budget, start: fired_share(db, budget, start),
                remember=lambda budget, start, share: remember_share(db, budget, start, share),
                alert=self.alerts,
            )
        except sqlite3.Error as exc:
            self._reject(f"{BUDGETS_OPTION}: cannot read this period's spend from {db!r}: {exc}")
            return
        blocking = sum(b.action == "block" for b in plan.budgets)
        webhook = "; alerts also go to its webhook" if plan.webhook else ""
        logger.info(
            "llm-usage: %d budget(s) from %s (%d blocking), periods in %s%s",
            len(plan.budgets), path, blocking, plan.timezone.key, webhook,
        )  # fmt: skip

    def _refuse_unknown_options(self) -> None:
        """A misspelt ``--set llm_usage_...`` is kept aside by mitmproxy as an option of some
        addon not loaded yet -- silently. Ours are all loaded by now, so it is a mistake (a
        stats token that never took effect): refused, naming the closest option."""
        ours = [name for name in ctx.options.keys() if name.startswith("llm_usage_")]
        for name in [name for name in ctx.options.deferred if name.startswith("llm_usage_")]:
            del ctx.options.deferred[name]
            close = difflib.get_close_matches(name, ours, n=1)
            self._reject(f"{name}: no such option" + (f" (did you mean {close[0]}?)" if close else ""))

    def _reject(self, message: str) -> None:
        """Refuse a bad value. While running, mitmproxy rolls the option back on
        ``OptionsError``. At start-up a script's exception would be printed as a traceback,
        so the message is logged as an error instead -- and mitmproxy's start-up error
        check exits ("Error logged during startup, exiting...")."""
        if self._running:
            raise exceptions.OptionsError(message)
        self._refused = True
        logger.error("llm-usage: %s", message)

    def running(self) -> None:
        self._running = True
        warm_up_prices()  # genai-prices' data (~40,000 objects) now, not during the first call
        if self.switches[UPDATE_PRICES_OPTION]:
            # genai-prices' own updater: a background thread, started without waiting, so an
            # offline start is not delayed; until a fetch succeeds the bundled prices stay in use,
            # and a row priced with fetched ones says so in its cost_source.
            self._price_updates = UpdatePrices()
            self._price_updates.start(wait=False)
            logger.info("llm-usage: genai-prices' data is refreshed hourly in the background")
        self._start_otlp()
        host = ctx.options.listen_host or "localhost"
        if host in ("0.0.0.0", "::"):
            host = "localhost"
        port = ctx.options.listen_port or 8080
        lines = [
            f"proxy on http://{host}:{port}/<provider>/... (providers: {', '.join(sorted(self.providers))})",
            f"dashboard on http://{host}:{port}/dashboard, requests logged to {ctx.options.llm_usage_db}",
        ]
        for spec in ctx.options.mode:
            mode = mode_specs.ProxyMode.parse(spec)
            if isinstance(mode, mode_specs.RegularMode):
                where = f"{mode.listen_host(ctx.options.listen_host) or 'localhost'}:{mode.listen_port(port)}"
                hosts = ", ".join(sorted({h for h, _ in self.provider_hosts} - {"localhost", "127.0.0.1"}))
                lines.append(f"HTTPS_PROXY=http://{where} records calls to {hosts}; every other host is "
                             "tunnelled untouched (mitmproxy's CA and the environment lines: make ca)")  # fmt: skip
        self.call_lines(lines)

    def stop_price_updates(self) -> None:
        updates, self._price_updates = self._price_updates, None
        if updates is not None:
            updates.stop()

    def close_otlp(self) -> None:
        """Export what is left, within a few seconds whatever the collector does."""
        otlp, self.otlp = self.otlp, None
        if otlp is not None:
            otlp.close()

    def close_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
