"""Calendar periods in a time zone: the hour, day, ISO week (Monday first) or month that
contains an instant, as UTC bounds. Pure.

Local wall-clock periods: a day is 23 or 25 hours across a DST change, and an hour the
clock repeats at a fall-back change is one period of two hours (its wall-clock label).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _local_start(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The first instant of a local wall-clock time (a skipped one: the first that exists)."""
    moment = datetime.combine(day, time(hour), tzinfo=tz)
    as_utc = moment.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != moment.replace(tzinfo=None):  # skipped (spring forward)
        return as_utc
    return datetime.combine(day, time(hour), tzinfo=tz).replace(fold=0).astimezone(UTC)


def period_bounds(period: str, tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the ``period`` that contains ``now``."""
    local = now.astimezone(tz)
    day = local.date()
    if period == "hour":
        start = _local_start(day, local.hour, tz)
        following = local.replace(minute=0, second=0, microsecond=0, fold=0) + timedelta(hours=1)
        end = _local_start(following.date(), following.hour, tz)
        while end <= now:  # a repeated wall-clock hour: its second pass belongs to it too
            following += timedelta(hours=1)
            end = _local_start(following.date(), following.hour, tz)
        return start, end
    if period == "day":
        first, after = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    elif period == "month":
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return _local_start(first, 0, tz), _local_start(after, 0, tz)
