"""``llm_usage_budgets``: spending limits, their alerts and what happens at the limit.

::

    timezone: Europe/Berlin          # periods are calendar hours/days/weeks/months here
    webhook: https://hooks.slack.com/services/...   # optional: Slack/Discord-style {"text": ...}
    budgets:
      - name: daily
        period: day
        limit_usd: 20
        alert_at: [0.5, 0.8, 1.0]
      - name: openai-monthly
        period: month
        limit_usd: 100
        scope: {provider: openai}
        action: block

Every key is checked at start; an error names the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .files import ConfigError, read_structured_file

PERIODS = ("hour", "day", "week", "month")
ACTIONS = ("warn", "block")
SCOPES = ("provider", "model", "client", "project", "key")
"""What a budget can be limited to; ``key`` is a key fingerprint (or a label of one)."""
DEFAULT_ALERTS = (Decimal("0.5"), Decimal("0.8"), Decimal("1"))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}")
_TOP = {"timezone", "webhook", "budgets"}
_BUDGET = {"name", "period", "limit_usd", "alert_at", "scope", "action"}


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    period: str
    limit_usd: Decimal
    scope: tuple[tuple[str, str], ...] = ()
    """``(column filter, value)`` pairs, all of which a call must match; empty: every call."""
    alert_at: tuple[Decimal, ...] = DEFAULT_ALERTS
    action: str = "warn"


@dataclass(frozen=True, slots=True)
class BudgetPlan:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    webhook: str | None = None
    budgets: tuple[Budget, ...] = ()


def load_budgets(path: str, key_labels: dict[str, str] | None = None) -> BudgetPlan:
    """The budgets of ``path`` (``BudgetPlan()`` without one); ConfigError naming file and key.
    A ``key`` scope may name a key by its label (``llm_usage_key_labels``)."""
    if not path:
        return BudgetPlan()
    data = read_structured_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'budgets' (and 'timezone', 'webhook')")
    unknown = set(data) - _TOP
    if unknown:
        raise ConfigError(f"{path}: {sorted(unknown)[0]!r}: unknown key (known: {', '.join(sorted(_TOP))})")
    timezone = _timezone(data.get("timezone", "UTC"), f"{path}: timezone")
    webhook = _webhook(data.get("webhook"), f"{path}: webhook")
    entries = data.get("budgets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: budgets: must be a list of budgets")
    by_label = {label: key_id for key_id, label in (key_labels or {}).items()}
    budgets = [_budget(entry, f"{path}: budgets[{i}]", by_label) for i, entry in enumerate(entries)]
    names = [b.name for b in budgets]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{path}: budgets[{i}].name: {name!r} is used twice")
    return BudgetPlan(timezone, webhook, tuple(budgets))


def _timezone(value: Any, where: str) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown time zone {value!r}") from None


def _webhook(value: Any, where: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: must be an http(s) URL")
    return str(value)


def _budget(entry: Any, where: str, by_label: dict[str, str]) -> Budget:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping (name, period, limit_usd, ...)")
    unknown = set(entry) - _BUDGET
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (known: {', '.join(sorted(_BUDGET))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: 1 to 64 letters, digits, spaces, '.', '_' or '-', not {name!r}")
    where = f"{where} ({name})"
    period = entry.get("period")
    if period not in PERIODS:
        raise ConfigError(f"{where}.period: must be one of {', '.join(PERIODS)}, not {period!r}")
    limit = _decimal(entry.get("limit_usd"), f"{where}.limit_usd")
    if limit <= 0:
        raise ConfigError(f"{where}.limit_usd: must be more than 0")
    alerts = entry.get("alert_at", [float(a) for a in DEFAULT_ALERTS])
    if not isinstance(alerts, list) or not alerts:
        raise ConfigError(f"{where}.alert_at: must be a list of shares of the limit, such as [0.5, 0.8, 1.0]")
    shares = tuple(sorted({_decimal(a, f"{where}.alert_at") for a in alerts}))
    if any(not 0 < share <= 10 for share in shares):
        raise ConfigError(f"{where}.alert_at: each share must be more than 0 and at most 10 (1.0 is the limit)")
    action = entry.get("action", "warn")
    if action not in ACTIONS:
        raise ConfigError(f"{where}.action: must be one of {', '.join(ACTIONS)}, not {action!r}")
    return Budget(name, period, limit, _scope(entry.get("scope"), f"{where}.scope", by_label), shares, action)


def _scope(value: Any, where: str, by_label: dict[str, str]) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping such as {{provider: openai}}")
    pairs = []
    for name, wanted in value.items():
        if name not in SCOPES:
            raise ConfigError(f"{where}.{name}: unknown scope (known: {', '.join(SCOPES)})")
        if not isinstance(wanted, str) or not wanted:
            raise ConfigError(f"{where}.{name}: must be a name")
        if name == "key":
            wanted = by_label.get(wanted, wanted)
            if not re.fullmatch(r"key-[0-9a-f]{8}", wanted):
                raise ConfigError(f"{where}.key: {wanted!r} is neither a key fingerprint nor a key label")
        pairs.append((name, wanted))
    return tuple(sorted(pairs))


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    return number
