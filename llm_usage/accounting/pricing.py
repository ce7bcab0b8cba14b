"""What a call cost, and where that price came from.

Order of authority, first that knows wins:

1. ``provider``: a cost the provider reported itself (OpenRouter's ``usage.cost``).
2. ``user``: the user's ``llm_usage_pricing`` file.
3. ``genai-prices <version>``: the genai-prices package's bundled data (no network),
   which keeps prices current, with cache-read/write and tiered prices.
4. ``pricing.yaml``: what genai-prices lacks (NVIDIA-hosted, ollama.com, local Ollama).

No price known -> cost ``None`` ("unpriced"), never 0. Money is ``Decimal`` throughout.
``cache_savings_usd`` is what prompt caching saved: the cost had every cached token been
billed at the plain input price, minus the real cost (negative when cache writes cost
more than they saved).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import genai_prices
from genai_prices import data_snapshot

# genai-prices' own per-unit arithmetic (private helpers of the pinned version; see
# ``genai_breakdown``, and the test that holds it to ``calc_price``).
from genai_prices.types import (
    ModelPrice,
    TieredPrices,
    _collect_resolved_model_prices,
    _compute_registry_priced_counts,
    _reported_usage_keys,
    calc_unit_price,
)
from genai_prices.units import _get_registry

from ..config.prices import PriceEntry, PriceTable, TierRules, TokenPrices
from ..parsers.usage import Usage

logger = logging.getLogger(__name__)

GENAI_SOURCE = f"genai-prices {genai_prices.__version__}"
GENAI_USAGE_KEYS = frozenset(_reported_usage_keys())
"""What genai-prices' ``Usage`` takes (it refuses any other key)."""
_MILLION = Decimal(1_000_000)


Breakdown = tuple[tuple[str, Decimal], ...]
"""A cost by billed dimension (genai-prices' usage keys: ``input_tokens`` is the input
not counted under a more specific key, ``cache_write_1h_tokens``, ``web_searches``, ...)."""


@dataclass(frozen=True, slots=True)
class Priced:
    cost_usd: Decimal | None
    source: str | None
    cache_savings_usd: Decimal | None = None
    breakdown: Breakdown = ()
    unpriced: tuple[str, ...] = ()
    """Billed dimensions the price could not account for (a server tool with no known
    per-call price, a service tier with no known price): the cost is too low by them."""


UNPRICED = Priced(None, None)


def table_breakdown(prices: TokenPrices, usage: Usage) -> Breakdown:
    """Cost by dimension from a per-million price table; cached tokens are part of
    ``input_tokens``. A table prices tokens only: other dimensions are ``unpriced_in``."""
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    uncached = max((usage.input_tokens or 0) - cache_read - cache_write, 0)
    parts = (
        ("input_tokens", uncached * prices.input),
        ("cache_read_tokens", cache_read * (prices.cache_read if prices.cache_read is not None else prices.input)),
        ("cache_write_tokens", cache_write * (prices.cache_write if prices.cache_write is not None else prices.input)),
        ("output_tokens", (usage.output_tokens or 0) * prices.output),
    )
    return tuple((name, cost / _MILLION) for name, cost in parts if cost)


def table_cost(prices: TokenPrices, usage: Usage) -> Decimal:
    return sum((cost for _, cost in table_breakdown(prices, usage)), Decimal(0))


_VERSION_SUFFIX = re.compile(r"[-@:](?:\d{4}-?\d{2}-?\d{2}|\d{4}|v\d[\w.]*|latest|preview)$")
_PREFIX_ENDS = ("/", "-", ":", ".", "@", "_")


def prefix_applies(prefix: str, model: str) -> bool:
    """Does a price table key cover this model?

    A key that is empty or ends with a separator (``""``, ``"meta/"``, ``"gpt-4o-"``) is a
    prefix of a family. Any other key names one model and also covers its dated or
    versioned snapshots (``gpt-4o`` -> ``gpt-4o-2024-08-06``, ``claude-3-7-sonnet@20250219``,
    ``llama3:latest``) -- but not a different model that merely starts the same way
    (``gpt-4o`` must not price ``gpt-4o-mini``).
    """
    if not model.startswith(prefix):
        return False
    if not prefix or prefix.endswith(_PREFIX_ENDS) or len(model) == len(prefix):
        return True
    return bool(_VERSION_SUFFIX.fullmatch(model, len(prefix)))


def lookup_table(table: PriceTable, provider: str, model: str) -> PriceEntry | None:
    """The longest key that covers the model (see ``prefix_applies``), the provider's own
    entries before the global ones."""
    for scope in (provider, "*"):
        entries = table.get(scope)
        if not entries:
            continue
        best: str | None = None
        for prefix in entries:
            if (best is None or len(prefix) > len(best)) and prefix_applies(prefix, model):
                best = prefix
        if best is not None:
            return entries[best]
    return None


PER_CALL_FEES = frozenset(("web_searches", "web_fetches", "storage_searches", "code_executions"))
"""Details billed per call rather than per token: without a price they are left unpaid
(and said so), where a token subset without its own price costs its parent's price."""
FREE_CALLS = frozenset(("web_fetches",))
"""Anthropic's web fetch has no charge beyond its tokens:
https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-fetch-tool#usage-and-pricing"""


def priced_with(
    costs: Callable[[Usage], Breakdown], usage: Usage, source: str, unpriced: tuple[str, ...] = ()
) -> Priced:
    """The cost by dimension, and what caching saved: the cost had the cached tokens been
    plain input."""
    breakdown = costs(usage)
    cost = sum((c for _, c in breakdown), Decimal(0))
    savings = None
    if usage.cache_read_tokens or usage.cache_write_tokens:
        plain = usage.with_(cache_read_tokens=None, cache_write_tokens=None, details=_without_cache(usage.details))
        savings = sum((c for _, c in costs(plain)), Decimal(0)) - cost
    return Priced(cost, source, savings, breakdown, unpriced)


def _without_cache(details: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    return tuple((key, n) for key, n in details if not key.startswith("cache_"))


def warm_up_prices() -> None:
    """Load genai-prices' bundled data now rather than on the first priced call."""
    data_snapshot.get_snapshot()


def genai_model_price(provider_id: str, model: str, day: date) -> tuple[ModelPrice | None, str]:
    """genai-prices' price set for a model on a day (prices change by date), or None, and
    the ``cost_source`` it gives: ``genai-prices <version>``, or with the time of the data
    when ``llm_usage_update_prices`` fetched newer data."""
    global _cached_snapshot
    snapshot = data_snapshot.get_snapshot()
    if snapshot is not _cached_snapshot:  # new data: forget the old prices (and the old data)
        _model_price.cache_clear()
        _cached_snapshot = snapshot
    source = GENAI_SOURCE
    if snapshot.from_auto_update:
        source = f"{GENAI_SOURCE} (data of {snapshot.timestamp.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    return _model_price(provider_id, model, day), source


_cached_snapshot: data_snapshot.DataSnapshot | None = None


@lru_cache(maxsize=4096)
def _model_price(provider_id: str, model: str, day: date) -> ModelPrice | None:
    """Cached: finding the model and its dated price is the same for every call of a day
    (only the writer thread prices calls)."""
    try:
        _provider, model_info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return model_info.get_prices(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))


def genai_breakdown(model_price: ModelPrice, usage: Usage) -> Breakdown:
    """genai-prices' own arithmetic, unit by unit (``ModelPrice.calc_price`` sums the same
    terms; its helpers are used as they are, the version is pinned, and a test holds the
    sum of this breakdown to ``calc_price``'s total for every priced model)."""
    resolved = _resolved(model_price)
    counts = _genai_counts(usage)
    try:
        # A priced unit the usage does not mention is 0 here, said outright: genai-prices
        # would otherwise infer it from the others for every call (two thirds of the cost).
        zero = dict.fromkeys(_zero_keys(resolved, counts), 0)
        priced = _compute_registry_priced_counts(resolved, genai_prices.Usage(**zero, **counts))
    except ValueError:  # a parent said to be 0 under a reported child: let genai-prices infer it
        priced = _compute_registry_priced_counts(resolved, genai_prices.Usage(**counts))
    tiered = any(isinstance(price, TieredPrices) for _, price in resolved)
    threshold = (usage.input_tokens or 0) if tiered else 0
    parts = [
        (unit.usage_key, calc_unit_price(price, priced[unit.usage_key], threshold, unit.per))
        for unit, price in resolved
    ]
    return tuple((name, cost) for name, cost in parts if cost)


def _genai_counts(usage: Usage) -> dict[str, int]:
    """The usage in genai-prices' terms (its ``Usage`` keys), as reported."""
    counts = {"input_tokens": usage.input_tokens or 0, "output_tokens": usage.output_tokens or 0}
    if usage.cache_read_tokens:
        counts["cache_read_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        counts["cache_write_tokens"] = usage.cache_write_tokens
    counts.update((key, n) for key, n in usage.details if key in GENAI_USAGE_KEYS)
    return counts


def _zero_keys(resolved: tuple[Any, ...], counts: dict[str, int]) -> list[str]:
    """The priced units the usage does not mention, which are then 0 -- unless two of its
    more general units are reported (cached *and* audio tokens, but not how many cached
    tokens were audio): genai-prices refuses to guess that, and so does this."""
    registry = _get_registry()
    reported = {key for key, n in counts.items() if n}
    zero = []
    for unit, _ in resolved:
        key = unit.usage_key
        if key in counts or key == "requests":
            continue
        general = registry.ancestor_usage_keys(key) - {"input_tokens", "output_tokens"}
        if len(general & reported) < 2:
            zero.append(key)
    return zero


_RESOLVED: dict[int, tuple[ModelPrice, tuple[Any, ...]]] = {}


def _resolved(model_price: ModelPrice) -> tuple[Any, ...]:
    """genai-prices' priced units of a price set, worked out once per set (the sets are
    cached, so the same object comes back; it is kept here so its id stays its own)."""
    entry = _RESOLVED.get(id(model_price))
    if entry is None or entry[0] is not model_price:
        if len(_RESOLVED) > 4096:
            _RESOLVED.clear()
        entry = _RESOLVED[id(model_price)] = (model_price, _collect_resolved_model_prices(model_price, _get_registry()))
    return entry[1]


def _priced_units(model_price: ModelPrice) -> frozenset[str]:
    return frozenset(unit.usage_key for unit, _ in _resolved(model_price))


STANDARD_TIERS = frozenset(("", "default", "standard", "auto", "on_demand"))
"""Tiers served at the standard price (what genai-prices and the tables price)."""


def tier_multiplier(rules: TierRules, provider: str, model: str, tier: str | None) -> Decimal | None:
    """What the tier served multiplies the token prices by; None when a part of it has no
    known price. A tier string may combine parts (Anthropic ``standard+fast+geo:us``):
    their multipliers multiply."""
    multiplier = Decimal(1)
    for part in (tier or "").split("+"):
        rule = rules.get(provider, {}).get(part)
        if rule is None:
            if part in STANDARD_TIERS:
                continue
            return None
        keys = [key for key in rule.multipliers if prefix_applies(key, model)]
        if not keys:
            return None
        multiplier *= rule.multipliers[max(keys, key=len)]
    return multiplier


def with_tier(priced: Priced, rules: TierRules, provider: str, model: str, tier: str | None) -> Priced:
    """The price on the tier served: its multiplier applies to the token dimensions (a
    server tool's per-call fee is the same on every tier). A tier with no known price
    leaves the standard price and says so."""
    if not tier or priced.cost_usd is None or priced.source == "provider":
        return priced
    multiplier = tier_multiplier(rules, provider, model, tier)
    if multiplier is None:
        return replace(priced, unpriced=(*priced.unpriced, f"service_tier:{tier}"))
    if multiplier == 1:
        return priced
    tokens = sum((cost for name, cost in priced.breakdown if name.endswith("_tokens")), Decimal(0))
    change = tokens * (multiplier - 1)
    savings = priced.cache_savings_usd * multiplier if priced.cache_savings_usd is not None else None
    return replace(
        priced,
        cost_usd=priced.cost_usd + change,
        cache_savings_usd=savings,
        breakdown=(*priced.breakdown, (f"service_tier:{tier}", change)),
    )


class Pricer:
    def __init__(self, user: PriceTable, builtin: PriceTable, tiers: TierRules | None = None) -> None:
        self.user = user
        self.builtin = builtin
        self.tiers = tiers or {}

    def price(self, provider: str, genai_provider: str | None, usage: Usage, at: datetime) -> Priced:
        priced = self._standard(provider, genai_provider, usage, at)
        return with_tier(priced, self.tiers, provider, usage.model or "", usage.service_tier)

    def _standard(self, provider: str, genai_provider: str | None, usage: Usage, at: datetime) -> Priced:
        if usage.provider_cost_usd is not None:
            return Priced(usage.provider_cost_usd, "provider", breakdown=(("provider", usage.provider_cost_usd),))
        model = usage.model
        if not model or not usage.has_counts:
            return UNPRICED
        entry = lookup_table(self.user, provider, model)
        if entry is not None:
            return self._from_table(entry, usage)
        if genai_provider is not None:
            priced = self._genai(genai_provider, model, usage, at)
            if priced is not None:
                return priced
        entry = lookup_table(self.builtin, provider, model)
        if entry is not None:
            return self._from_table(entry, usage)
        return UNPRICED

    @staticmethod
    def _from_table(entry: PriceEntry, usage: Usage) -> Priced:
        """A price table knows input, output and cache prices: a per-call fee is unpriced."""
        unpriced = tuple(key for key, _ in usage.details if key in PER_CALL_FEES - FREE_CALLS)
        return priced_with(lambda u: table_breakdown(entry.prices, u), usage, entry.source, unpriced)

    def _genai(self, genai_provider: str, model: str, usage: Usage, at: datetime) -> Priced | None:
        model_price, source = genai_model_price(genai_provider, model, at.astimezone(UTC).date())
        if model_price is None:
            return None
        priced_units = _priced_units(model_price)
        unpriced = tuple(
            key for key, _ in usage.details if key in PER_CALL_FEES - FREE_CALLS and key not in priced_units
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return priced_with(lambda u: genai_breakdown(model_price, u), usage, source, unpriced)
            except ValueError as exc:  # details genai-prices cannot price together (a part above its whole)
                logger.warning("llm-usage: genai-prices could not price %s/%s: %s", genai_provider, model, exc)
            # The plain counts still have a price; the details it could not take are named.
            plain = usage.with_(details=())
            refused = tuple(key for key, _ in usage.details if key not in unpriced)
            try:
                return priced_with(lambda u: genai_breakdown(model_price, u), plain, source, (*unpriced, *refused))
            except ValueError:
                return None
