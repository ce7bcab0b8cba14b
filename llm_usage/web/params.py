"""Query parameters of the stats API: parsed and validated here, pure functions only.

Every problem raises ``ParamError`` (a ``ValueError``) whose message starts with the
parameter's name; the web layer answers it with 400 ``{"error": message}``.

Time window (the same on every endpoint that takes one):
- ``days=N`` (1..3660): today and the N-1 days before it, as calendar days in ``tz``;
  ``days=1`` is "today so far".
- ``since`` (inclusive) / ``until`` (exclusive): ISO-8601 dates or date-times; one without
  an offset is read in ``tz``. Not combinable with ``days``.
- neither: all time (``/stats/timeseries``: the last 30 days; with ``until`` alone it
  starts at the first row).
- ``tz``: an IANA name (``Europe/Berlin``), UTC by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..proxy.attribution import PROJECT_NAME, PROJECT_RULE

MAX_DAYS = 3660
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
MAX_TEXT = 200
MAX_POINTS = 10_000
STATUSES = ("error", "unpriced", "partial", "missing", "invalid", "no-usage", "incomplete")
BUCKETS = ("day", "hour", "week", "month")
_TZ_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")


class ParamError(ValueError):
    """A bad query parameter; the message names it."""


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until)`` in UTC; ``None`` is open (the first row / now and beyond)."""

    since: datetime | None = None
    until: datetime | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


@dataclass(frozen=True, slots=True)
class Filters:
    window: Window = field(default_factory=Window)
    provider: str | None = None
    model: str | None = None
    client: str | None = None
    session: str | None = None
    project: str | None = None
    key: str | None = None
    """A key's fingerprint (``key-3fa9c1d2``)."""

    def with_session(self, session: str) -> Filters:
        return replace(self, session=session)


@dataclass(frozen=True, slots=True)
class Page:
    limit: int = 50
    offset: int = 0
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Series:
    bucket: str = "day"


WINDOW_PARAMS = frozenset({"days", "since", "until", "tz"})
FILTER_PARAMS = WINDOW_PARAMS | {"provider", "model", "client", "session", "project", "key"}
PAGE_PARAMS = frozenset({"limit", "offset", "status"})
SERIES_PARAMS = frozenset({"bucket"})


def single_values(pairs: Iterable[tuple[str, str]], allowed: frozenset[str] | set[str]) -> dict[str, str]:
    """Query pairs -> dict; unknown or repeated parameters are errors."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise ParamError(f"{shown!r}: unknown parameter (allowed: {', '.join(sorted(allowed))})")
        if name in values:
            raise ParamError(f"{name}: given more than once")
        values[name] = value
    return values


def parse_int(name: str, value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]{1,12}", value.strip()):
        raise ParamError(f"{name}: must be a whole number from {low} to {high}, not {value[:40]!r}")
    number = int(value)
    if not low <= number <= high:
        raise ParamError(f"{name}: must be from {low} to {high}, not {number}")
    return number


def parse_text(name: str, value: str) -> str:
    if not value:
        raise ParamError(f"{name}: must not be empty")
    if len(value) > MAX_TEXT:
        raise ParamError(f"{name}: longer than {MAX_TEXT} characters")
    if any(ord(c) < 0x20 for c in value):
        raise ParamError(f"{name}: contains control characters")
    return value


def parse_tz(value: str) -> ZoneInfo:
    if not value or len(value) > 64 or not _TZ_NAME.match(value) or ".." in value:
        raise ParamError(f"tz: not an IANA time zone name: {value[:64]!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ParamError(f"tz: unknown time zone {value!r}") from None


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""The range a date parameter may take: any call's time, with room for a window's
arithmetic (a day, a time zone, an hour) short of the calendar's edges."""


def parse_instant(name: str, value: str, tz: ZoneInfo) -> datetime:
    """ISO-8601 date or date-time -> aware UTC datetime; no offset means ``tz``."""
    # An unencoded "+" in a query string arrives as a space: "T10:00 05:30" means "+05:30".
    text = re.sub(r"(T[0-9:.]+) ([0-9]{2}:?[0-9]{2})$", r"\1+\2", value.strip())
    if not text or len(text) > 40:
        raise ParamError(f"{name}: not an ISO-8601 date or date-time: {value[:40]!r}")
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            parsed = datetime.combine(date.fromisoformat(text), time())
        else:
            parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ParamError(f"{name}: not an ISO-8601 date or date-time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        instant = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        instant = None
    if instant is None or not EARLIEST <= instant <= LATEST:
        raise ParamError(f"{name}: must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}: {value[:40]!r}")
    return instant


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC (where midnight is skipped, the first hour that exists)."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def parse_window(values: dict[str, str], now: datetime, default_days: int | None = None) -> Window:
    tz = parse_tz(values["tz"]) if "tz" in values else ZoneInfo("UTC")
    if "days" in values and ("since" in values or "until" in values):
        raise ParamError("days: cannot be combined with since/until")
    since = parse_instant("since", values["since"], tz) if "since" in values else None
    until = parse_instant("until", values["until"], tz) if "until" in values else None
    if since is not None and until is not None and since >= until:
        raise ParamError("since: must be before until")
    days = parse_int("days", values["days"], 1, MAX_DAYS) if "days" in values else None
    if days is None and since is None and until is None:
        days = default_days
    if days is not None:
        today = now.astimezone(tz).date()
        since = local_midnight(today - timedelta(days=days - 1), tz)
    return Window(since=since, until=until, tz=tz)


def parse_match(name: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    if not pattern.fullmatch(value):
        raise ParamError(f"{name}: must be {rule}, not {value[:40]!r}")
    return value


_SESSION = re.compile(r"[\x21-\x7e]{1,128}")
_KEY = re.compile(r"key-[0-9a-f]{8}")


def key_by_label(values: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    """``values`` with a ``key`` given by its label (``llm_usage_key_labels``: fingerprint ->
    label) turned into that key's fingerprint; a fingerprint stays as it is."""
    if "key" not in values:
        return values
    by_label = {label: key_id for key_id, label in labels.items()}
    return {**values, "key": by_label.get(values["key"], values["key"])}


def parse_filters(values: dict[str, str], now: datetime, default_days: int | None = None) -> Filters:
    def text(name: str) -> str | None:
        return parse_text(name, values[name]) if name in values else None

    def match(name: str, pattern: re.Pattern[str], rule: str) -> str | None:
        return parse_match(name, values[name], pattern, rule) if name in values else None

    return Filters(
        window=parse_window(values, now, default_days),
        provider=text("provider"),
        model=text("model"),
        client=text("client"),
        session=match("session", _SESSION, "1 to 128 printable ASCII characters without spaces"),
        project=match("project", PROJECT_NAME, PROJECT_RULE),
        key=match("key", _KEY, "a key fingerprint such as key-3fa9c1d2"),
    )


def parse_page(values: dict[str, str]) -> Page:
    status = values.get("status")
    if status is not None and status not in STATUSES:
        raise ParamError(f"status: must be one of {', '.join(STATUSES)}, not {status[:40]!r}")
    return Page(
        limit=parse_int("limit", values["limit"], 1, MAX_LIMIT) if "limit" in values else 50,
        offset=parse_int("offset", values["offset"], 0, MAX_OFFSET) if "offset" in values else 0,
        status=status,
    )


def parse_series(values: dict[str, str]) -> Series:
    bucket = values.get("bucket", "day")
    if bucket not in BUCKETS:
        raise ParamError(f"bucket: must be one of {', '.join(BUCKETS)}, not {bucket[:40]!r}")
    return Series(bucket=bucket)
