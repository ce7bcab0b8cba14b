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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices

from ..config.prices import PriceEntry, PriceTable, TokenPrices
from ..parsers.usage import Usage

logger = logging.getLogger(__name__)

GENAI_SOURCE = f"genai-prices {genai_prices.__version__}"
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Priced:
    cost_usd: Decimal | None
    source: str | None
    cache_savings_usd: Decimal | None = None


UNPRICED = Priced(None, None)


def table_cost(prices: TokenPrices, usage: Usage) -> Decimal:
    """Cost from a per-million price table; cached tokens are part of ``input_tokens``."""
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    uncached = max((usage.input_tokens or 0) - cache_read - cache_write, 0)
    total = (
        uncached * prices.input
        + cache_read * (prices.cache_read if prices.cache_read is not None else prices.input)
        + cache_write * (prices.cache_write if prices.cache_write is not None else prices.input)
        + (usage.output_tokens or 0) * prices.output
    )
    return total / _MILLION


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


def priced_with(cost_of: Callable[[Usage], Decimal], usage: Usage, source: str) -> Priced:
    """The cost, and what caching saved: the cost had the cached tokens been plain input."""
    cost = cost_of(usage)
    savings = None
    if usage.cache_read_tokens or usage.cache_write_tokens:
        savings = cost_of(usage.with_(cache_read_tokens=None, cache_write_tokens=None)) - cost
    return Priced(cost, source, savings)


def warm_up_prices() -> None:
    """Load genai-prices' bundled data now rather than on the first priced call."""
    data_snapshot.get_snapshot()


@lru_cache(maxsize=4096)
def genai_model_price(provider_id: str, model: str, day: date) -> ModelPrice | None:
    """genai-prices' price set for a model on a day (prices change by date), or None.

    Cached: finding the model and its dated price is the same for every call of a day.
    """
    try:
        _provider, model_info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    return model_info.get_prices(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))


def _at_tier(price: Any, input_tokens: int) -> Decimal | None:
    """genai-prices' cliff tiers: crossing a tier's start prices ALL tokens at that tier
    (``genai_prices.types.TieredPrices``, e.g. Gemini 2.5 Pro above 200k input tokens)."""
    if price is None or isinstance(price, Decimal):
        return price
    if isinstance(price, TieredPrices):
        for tier in reversed(price.tiers):
            if input_tokens > tier.start:
                return tier.price
        return price.base
    return None


def token_prices(model_price: ModelPrice, input_tokens: int) -> TokenPrices | None:
    """The four per-token prices this call pays, or None when the model is not priced
    per input/output token (then genai-prices' own calculation is used)."""
    values = model_price.__dict__
    input_price = _at_tier(values.get("input_mtok"), input_tokens)
    output_price = _at_tier(values.get("output_mtok"), input_tokens)
    if input_price is None or output_price is None:
        return None
    return TokenPrices(
        input=input_price,
        output=output_price,
        cache_read=_at_tier(values.get("cache_read_mtok"), input_tokens),
        cache_write=_at_tier(values.get("cache_write_mtok"), input_tokens),
    )


class Pricer:
    def __init__(self, user: PriceTable, builtin: PriceTable) -> None:
        self.user = user
        self.builtin = builtin

    def price(self, provider: str, genai_provider: str | None, usage: Usage, at: datetime) -> Priced:
        if usage.provider_cost_usd is not None:
            return Priced(usage.provider_cost_usd, "provider")
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
        return priced_with(lambda u: table_cost(entry.prices, u), usage, entry.source)

    def _genai(self, genai_provider: str, model: str, usage: Usage, at: datetime) -> Priced | None:
        model_price = genai_model_price(genai_provider, model, at.astimezone(UTC).date())
        if model_price is None:
            return None
        prices = token_prices(model_price, usage.input_tokens or 0)
        if prices is not None:
            # The same arithmetic as genai-prices' calc_price for per-token prices, without
            # its generic unit machinery (~40 us a call on the proxy's event loop);
            # tests/test_pricing.py checks both agree across models, tiers and caches.
            return priced_with(lambda u: table_cost(prices, u), usage, GENAI_SOURCE)
        try:
            return priced_with(lambda u: self._genai_cost(genai_provider, model, u, at), usage, GENAI_SOURCE)
        except LookupError:
            return None
        except ValueError as exc:  # usage genai-prices cannot price (inconsistent counts)
            logger.warning("llm-usage: genai-prices could not price %s/%s: %s", genai_provider, model, exc)
            return None

    @staticmethod
    def _genai_cost(genai_provider: str, model: str, usage: Usage, at: datetime) -> Decimal:
        counts = {
            "input_tokens": usage.input_tokens or 0,
            "output_tokens": usage.output_tokens or 0,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = genai_prices.calc_price(
                genai_prices.Usage(**{k: v for k, v in counts.items() if v}),
                model,
                provider_id=genai_provider,
                genai_request_timestamp=at,
            )
        return result.total_price
