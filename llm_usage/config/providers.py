"""``providers.yaml`` and the user's providers file: slug -> upstream and wire format.

A user file is merged per slug over the built-in one (``{openai: {base_url: ...}}``
re-points ``openai`` and keeps its format); a new slug with both keys adds a provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..parsers import FORMATS
from .files import BUILTIN_PROVIDERS, ConfigError, read_structured_file

RESERVED_SLUGS = frozenset({"stats", "dashboard", "healthz", "metrics"})
"""First path segments the proxy answers itself; never a provider."""
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_PROVIDER_KEYS = {"base_url", "format", "inject_stream_usage", "genai_prices", "base_url_option"}


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
