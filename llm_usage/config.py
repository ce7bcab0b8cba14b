"""Loading and validating ``providers.yaml``, ``pricing.yaml``, the user's files and ``.env``.

Everything here is a pure function of file contents that raises ``ConfigError`` with a
message naming the file and the key, so a bad config fails at start, never mid-traffic.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .parsers import FORMATS

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUILTIN_PROVIDERS = PROJECT_DIR / "providers.yaml"
BUILTIN_PRICING = PROJECT_DIR / "pricing.yaml"

RESERVED_SLUGS = frozenset({"stats", "dashboard", "healthz"})
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_PROVIDER_KEYS = {"base_url", "format", "inject_stream_usage", "genai_prices", "base_url_option"}
_PRICE_KEYS = {"input", "output", "cache_read", "cache_write"}


class ConfigError(ValueError):
    """A configuration problem, its message naming the file and key."""


@dataclass(frozen=True, slots=True)
class Provider:
    slug: str
    base_url: str
    format: str
    scheme: str
    host: str
    port: int
    base_path: str
    inject_stream_usage: bool = False
    genai_prices: str | None = None


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


# ---------------------------------------------------------------- files


def read_structured_file(path: str | Path) -> Any:
    """YAML (a superset of JSON) or JSON file contents; ConfigError naming the file."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        if p.suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{p}: not valid YAML/JSON: {exc}") from exc


def read_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (``export``, quotes and comments allowed)."""
    p = Path(path)
    if not p.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def env_default(name: str, default: str, dotenv: Mapping[str, str]) -> str:
    """The environment wins over ``.env``, which wins over the built-in default."""
    return os.environ.get(name) or dotenv.get(name) or default


# ---------------------------------------------------------------- providers


def parse_base_url(url: Any, where: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.base_url: must be a URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.base_url: {url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}.base_url: {url!r} must not carry a query, fragment or credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"{where}.base_url: {url!r}: {exc}") from exc
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def merge_providers(builtin: Any, user: Any, builtin_name: str, user_name: str) -> dict[str, dict[str, Any]]:
    """Per-slug merge: a user entry's keys override the built-in entry's keys."""
    merged: dict[str, dict[str, Any]] = {}
    for name, data in ((builtin_name, builtin), (user_name, user)):
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: must be a mapping of provider slug -> settings")
        for slug, entry in data.items():
            if not isinstance(entry, dict):
                raise ConfigError(f"{name}: {slug}: must be a mapping (base_url, format)")
            merged.setdefault(str(slug), {}).update(entry)
    return merged


def build_providers(
    merged: Mapping[str, Mapping[str, Any]], options: Mapping[str, str], where: str
) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for slug, entry in merged.items():
        at = f"{where}: {slug}"
        if not _SLUG.match(slug):
            raise ConfigError(f"{at}: slug must be lowercase letters, digits, '.', '_' or '-'")
        if slug in RESERVED_SLUGS:
            raise ConfigError(f"{at}: '{slug}' is reserved for the proxy's own pages")
        unknown = set(entry) - _PROVIDER_KEYS
        if unknown:
            raise ConfigError(f"{at}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_PROVIDER_KEYS))})")
        base_url = entry.get("base_url")
        if base_url is None and entry.get("base_url_option"):
            option = entry["base_url_option"]
            if option not in options:
                raise ConfigError(f"{at}.base_url_option: unknown option {option!r}")
            base_url = options[option]
        fmt = entry.get("format")
        if fmt is None:
            raise ConfigError(f"{at}.format: missing (a new provider needs one of {', '.join(FORMATS)})")
        if fmt not in FORMATS:
            raise ConfigError(f"{at}.format: {fmt!r} is not one of {', '.join(FORMATS)}")
        inject = entry.get("inject_stream_usage", False)
        if not isinstance(inject, bool):
            raise ConfigError(f"{at}.inject_stream_usage: must be true or false")
        genai = entry.get("genai_prices")
        if genai is not None and not isinstance(genai, str):
            raise ConfigError(f"{at}.genai_prices: must be a genai-prices provider id")
        scheme, host, port, base_path = parse_base_url(base_url, at)
        providers[slug] = Provider(
            slug=slug,
            base_url=str(base_url).rstrip("/"),
            format=fmt,
            scheme=scheme,
            host=host,
            port=port,
            base_path=base_path,
            inject_stream_usage=inject,
            genai_prices=genai,
        )
    return providers


def load_providers(user_file: str, options: Mapping[str, str]) -> dict[str, Provider]:
    builtin = read_structured_file(BUILTIN_PROVIDERS)
    user = read_structured_file(user_file) if user_file else None
    merged = merge_providers(builtin, user, BUILTIN_PROVIDERS.name, user_file)
    return build_providers(merged, options, user_file or BUILTIN_PROVIDERS.name)


# ---------------------------------------------------------------- prices


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
    structured = set(data) <= {"providers", "models"} and data != {}
    sections = data if structured else {"models": data}
    for section, body in sections.items():
        if body is None:
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


def merge_price_tables(*tables: PriceTable) -> PriceTable:
    merged: PriceTable = {}
    for table in tables:
        for scope, entries in table.items():
            merged.setdefault(scope, {}).update(entries)
    return merged


def check_price_scopes(table: PriceTable, providers: Mapping[str, Provider], name: str) -> None:
    """A price under ``providers.<slug>`` for a slug that does not exist is a typo."""
    for scope in table:
        if scope != "*" and scope not in providers:
            raise ConfigError(f"{name}: providers.{scope}: unknown provider (known: {', '.join(sorted(providers))})")


def load_price_tables(user_file: str) -> tuple[PriceTable, PriceTable]:
    """(user table, built-in table)."""
    builtin = parse_pricing(read_structured_file(BUILTIN_PRICING), BUILTIN_PRICING.name, "pricing.yaml")
    user = parse_pricing(read_structured_file(user_file), user_file, "user") if user_file else {}
    return user, builtin
