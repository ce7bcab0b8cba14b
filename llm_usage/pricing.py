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
import warnings
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import genai_prices

from .config import PriceEntry, PriceTable, TokenPrices
from .usage import Usage

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


def lookup_table(table: PriceTable, provider: str, model: str) -> PriceEntry | None:
    """Longest model-name prefix, the provider's own entries before the global ones."""
    for scope in (provider, "*"):
        entries = table.get(scope)
        if not entries:
            continue
        best: str | None = None
        for prefix in entries:
            if model.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        if best is not None:
            return entries[best]
    return None


def _without_cache(usage: Usage) -> Usage:
    return usage.with_(cache_read_tokens=None, cache_write_tokens=None)


class Pricer:
    def __init__(self, user: PriceTable, builtin: PriceTable) -> None:
        self.user = user
        self.builtin = builtin
        self._genai_misses: set[tuple[str, str]] = set()

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
        cost = table_cost(entry.prices, usage)
        savings = None
        if usage.cache_read_tokens or usage.cache_write_tokens:
            savings = table_cost(entry.prices, _without_cache(usage)) - cost
        return Priced(cost, entry.source, savings)

    def _genai(self, genai_provider: str, model: str, usage: Usage, at: datetime) -> Priced | None:
        key = (genai_provider, model)
        if key in self._genai_misses:
            return None
        try:
            cost = self._genai_cost(genai_provider, model, usage, at)
            savings = None
            if usage.cache_read_tokens or usage.cache_write_tokens:
                savings = self._genai_cost(genai_provider, model, _without_cache(usage), at) - cost
        except LookupError:
            self._genai_misses.add(key)
            return None
        except ValueError as exc:  # usage genai-prices cannot price (inconsistent counts)
            logger.warning("llm-usage: genai-prices could not price %s/%s: %s", genai_provider, model, exc)
            return None
        return Priced(cost, GENAI_SOURCE, savings)

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
