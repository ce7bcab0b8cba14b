"""Price tables: the built-in ``pricing.yaml`` and the user's ``llm_usage_pricing`` file.

Prices are USD per million tokens, kept as ``Decimal`` (from the YAML's own digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .files import BUILTIN_PRICING, ConfigError, read_structured_file
from .providers import Provider

_PRICE_KEYS = {"input", "output", "cache_read", "cache_write"}


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """USD per million tokens. Cache prices default to the input price."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceEntry:
    prices: TokenPrices
    source: str  # "user" or "pricing.yaml"


def _price(value: Any, at: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{at}: must be a number (USD per million tokens)")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigError(f"{at}: {value!r} is not a number") from exc
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{at}: {value!r} must be a non-negative number")
    return result


def parse_token_prices(entry: Any, at: str) -> TokenPrices:
    if not isinstance(entry, dict):
        raise ConfigError(f"{at}: must be a mapping with input and output prices")
    unknown = set(entry) - _PRICE_KEYS
    if unknown:
        raise ConfigError(f"{at}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_PRICE_KEYS))})")
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigError(f"{at}.{required}: missing")
    return TokenPrices(
        input=_price(entry["input"], f"{at}.input"),
        output=_price(entry["output"], f"{at}.output"),
        cache_read=_price(entry["cache_read"], f"{at}.cache_read") if "cache_read" in entry else None,
        cache_write=_price(entry["cache_write"], f"{at}.cache_write") if "cache_write" in entry else None,
    )


PriceTable = dict[str, dict[str, PriceEntry]]
"""scope ("*" for any provider, else a provider slug) -> model prefix -> entry."""


def parse_pricing(data: Any, name: str, source: str) -> PriceTable:
    """The structured form (``providers:`` / ``models:``) or the flat form
    ``{"my-model": {"input": 1.0, "output": 2.0}}``."""
    table: PriceTable = {}
    if data is None:
        return table
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: must be a mapping")
    structured = set(data) <= {"providers", "models", "service_tiers"} and data != {}
    sections = data if structured else {"models": data}
    for section, body in sections.items():
        if body is None or section == "service_tiers":  # parse_tiers reads those
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{name}: {section}: must be a mapping")
        if section == "models":
            scopes = {"*": body}
        else:
            scopes = body
        for scope, models in scopes.items():
            where = f"{name}: {section}" if scope == "*" else f"{name}: providers.{scope}"
            if not isinstance(models, dict):
                raise ConfigError(f"{where}: must be a mapping of model prefix -> prices")
            for prefix, entry in models.items():
                prices = parse_token_prices(entry, f"{where}.{prefix!s}" if prefix else f'{where}.""')
                table.setdefault(str(scope), {})[str(prefix)] = PriceEntry(prices, source)
    return table


@dataclass(frozen=True, slots=True)
class TierRule:
    """A service tier's price: a multiplier of the standard token prices, by model key
    (matched as price keys are: ``""`` is every model); ``source`` is the provider's page."""

    multipliers: dict[str, Decimal]
    source: str


TierRules = dict[str, dict[str, TierRule]]
"""provider slug -> tier (``flex``, ``priority``, ``fast``, ``geo:us``, ...) -> rule."""


def parse_tiers(data: Any, name: str) -> TierRules:
    """The ``service_tiers:`` section: ``<slug>: {<tier>: {source: URL, prices: {<model key>: multiplier}}}``."""
    rules: TierRules = {}
    section = data.get("service_tiers") if isinstance(data, dict) else None
    if section is None:
        return rules
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: service_tiers: must be a mapping of provider -> tier -> rule")
    for slug, tiers in section.items():
        if not isinstance(tiers, dict):
            raise ConfigError(f"{name}: service_tiers.{slug}: must be a mapping of tier -> rule")
        for tier, rule in tiers.items():
            at = f"{name}: service_tiers.{slug}.{tier}"
            if not isinstance(rule, dict) or set(rule) - {"source", "prices"} or "prices" not in rule:
                shape = "{source: <URL of the price page>, prices: {<model key>: multiplier}}"
                raise ConfigError(f"{at}: must be {shape}")
            source = rule.get("source")
            if not isinstance(source, str) or not source.startswith("https://"):
                raise ConfigError(f"{at}.source: the provider's price page, an https:// URL")
            prices = rule["prices"]
            if not isinstance(prices, dict) or not prices:
                raise ConfigError(f"{at}.prices: must map model keys to multipliers")
            multipliers = {str(key): _price(value, f"{at}.prices.{key}") for key, value in prices.items()}
            rules.setdefault(str(slug), {})[str(tier)] = TierRule(multipliers, source)
    return rules


def merge_price_tables(*tables: PriceTable) -> PriceTable:
    merged: PriceTable = {}
    for table in tables:
        for scope, entries in table.items():
            merged.setdefault(scope, {}).update(entries)
    return merged


def check_price_scopes(
    table: Mapping[str, object], providers: Mapping[str, Provider], name: str, section: str = "providers"
) -> None:
    """A price under ``providers.<slug>`` (or ``service_tiers.<slug>``) for a slug that does
    not exist is a typo."""
    for scope in table:
        if scope != "*" and scope not in providers:
            known = ", ".join(sorted(providers))
            raise ConfigError(f"{name}: {section}.{scope}: unknown provider (known: {known})")


def load_price_tables(user_file: str) -> tuple[PriceTable, PriceTable, TierRules]:
    """(user table, built-in table, service tier rules: the user's over the built-in ones)."""
    builtin_data = read_structured_file(BUILTIN_PRICING)
    builtin = parse_pricing(builtin_data, BUILTIN_PRICING.name, "pricing.yaml")
    tiers = parse_tiers(builtin_data, BUILTIN_PRICING.name)
    user: PriceTable = {}
    if user_file:
        user_data = read_structured_file(user_file)
        user = parse_pricing(user_data, user_file, "user")
        for slug, rules in parse_tiers(user_data, user_file).items():
            tiers.setdefault(slug, {}).update(rules)
    return user, builtin, tiers
