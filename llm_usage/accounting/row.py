"""The database row of one call: its columns (``Row``), and the pure step that fills them.

``Row``'s keys are the column list: the writer inserts them, the stats API lists them, and
a test holds the migrated schema (``store/schema.py``) to them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypedDict

from ..parsers import WireFormat
from ..parsers.usage import Usage
from ..proxy.headers import header_value
from .pricing import PER_CALL_FEES, Priced
from .record import CallRecord

_COST_PLACES = Decimal("1e-12")


class Row(TypedDict):
    timestamp: float
    """Request start in Unix seconds (REAL, as in the seed's table: a query such as
    ``timestamp > strftime('%s', 'now', '-1 day')`` is right); the API shows it as ISO-8601."""
    provider: str
    model: str | None
    endpoint: str
    method: str
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    duration_ms: float
    streaming: int
    status_code: int | None
    error: str | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    ttft_ms: float | None
    cost_source: str | None
    usage_status: str | None
    client: str | None
    cache_savings_usd: float | None
    transport: str
    """``http``, or ``websocket``: a call made on a socket, one row per request message."""
    service_tier: str | None
    """The tier the provider says it served the call on (``flex``, ``priority``, ...)."""
    cost_breakdown: str | None
    """JSON: the cost by billed dimension (``parts``), the per-call tool fees among them
    (``tool_fees_usd``), and what the price could not account for (``unpriced``)."""
    session_id: str | None
    """The coding session the call belongs to, as its client names it (``proxy/attribution.py``)."""
    subagent: str | None
    """The subagent that made the call (``review``, an agent type), within its session."""
    project: str | None
    """``X-LLM-Usage-Project`` or the ``/@<project>/`` path prefix."""
    key_id: str | None
    """A salted fingerprint of the API key (``accounting/keys.py``), never the key."""


COLUMNS: tuple[str, ...] = tuple(Row.__annotations__)
"""Every column a logged call fills (all but ``id``), in the order the migrations add them."""


def iso_utc(ts: float) -> str:
    """``ts`` (Unix seconds) as the API shows it: ``2026-11-29T05:45:55.123+00:00``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value.quantize(_COST_PLACES))


def _ms(start: float, end: float) -> float:
    """Milliseconds between two wall-clock times; never below 0 (the clock can be set back mid-call)."""
    return max(0.0, round((end - start) * 1000, 3))


NO_USAGE_ENDPOINTS = re.compile(r"/count_tokens$|:countTokens$|/models(?:/[^/:]+)?$")
"""Token counting and model lists (``/v1/models``, ``/v1beta/models/gemini-2.5-pro``, but
not ``/v1beta/models/gemini-2.5-pro:generateContent``)."""


def owes_usage(record: CallRecord) -> bool:
    """The one rule for "is this a billed call?": a POST to any endpoint but token counting
    and model lists, or a request message on a socket (``proxy/sockets.py``).

    Everything else is traffic that owes no usage: Claude Code's ``HEAD /`` pre-connect at
    start (answered 404 upstream), CORS ``OPTIONS``, ``GET`` model lists and stored
    responses (``GET /v1/responses/<id>`` repeats a usage already counted). Such a request
    is logged with ``usage_status`` 'none', no tokens and no cost, and is never a failed,
    unpriced or missing-usage call.
    """
    if record.transport == "websocket":
        return True
    upgrade = header_value(record.request_headers, b"upgrade")
    return billed_request(record.wire_format, record.method, record.path, upgrade)


def billed_request(wire_format: WireFormat, method: str, path: str, upgrade: str) -> bool:
    """``owes_usage`` from the request alone (the router asks it before a call is made):
    a POST but to token counting and model lists, or the opening of a socket that carries
    calls -- refused (a bad key, a rate limit), the calls it was opened for failed."""
    paths = wire_format.socket_paths
    if paths is not None and paths.search(path) is not None and upgrade.lower() == "websocket":
        return True
    return method == "POST" and not NO_USAGE_ENDPOINTS.search(path)


def usage_status(record: CallRecord, usage: Usage) -> str | None:
    """``usage_status`` for the row: what the parser saw, corrected by how the call ended.

    A stream that ended in an error was cut short, whatever the last usage said (Gemini
    repeats a running total in every chunk). A call that failed without any usage gets
    NULL rather than "missing"; one that owes no usage gets 'none'; one whose usage cannot be
    true (a negative or absurd count or cost) 'invalid'."""
    if not owes_usage(record):
        return "none"
    if usage.implausible:
        return "invalid"
    failed = record.failure is not None
    if failed and record.streamed:
        return "partial"
    if usage.has_counts:
        return usage.status
    if failed or (record.status_code or 0) >= 400 or usage.error:  # e.g. a socket's "error" event
        return None
    return "missing"


def clean_text(value: str | None) -> str | None:
    """Text that SQLite and a terminal can take: a lone surrogate (a client's string cut
    inside an emoji) is replaced, not allowed to make the row unwritable."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def build_row(record: CallRecord, usage: Usage, priced: Priced, status: str | None, error: str | None) -> Row:
    streamed = record.streamed
    return Row(
        timestamp=round(record.started_at, 6),
        provider=record.provider.slug,
        model=clean_text(usage.model),
        endpoint=record.path,
        method=record.method,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        cost_usd=_money(priced.cost_usd),
        duration_ms=_ms(record.started_at, record.ended_at),
        streaming=int(streamed),
        status_code=record.status_code,
        error=clean_text(error),
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        ttft_ms=_ms(record.started_at, record.first_byte_at) if streamed and record.first_byte_at is not None else None,
        cost_source=priced.source if priced.cost_usd is not None else None,
        usage_status=status,
        client=record.client,
        cache_savings_usd=_money(priced.cache_savings_usd),
        transport=record.transport,
        service_tier=clean_text(usage.service_tier[:64]) if usage.service_tier else None,
        cost_breakdown=breakdown_json(priced, usage),
        session_id=record.session_id,
        subagent=record.subagent,
        project=record.project,
        key_id=record.key_id,
    )


def _reasoning_cost(priced: Priced, usage: Usage) -> Decimal | None:
    """What the reasoning tokens cost: billed as (text) output, at the output part's price
    per token -- the output not counted under a priced subset (image, audio) -- on the tier
    the call was served on."""
    parts = dict(priced.breakdown)
    output_cost = parts.get("output_tokens")
    if not usage.reasoning_tokens or not usage.output_tokens or output_cost is None:
        return None
    subsets = sum(n for key, n in usage.details if key.startswith("output_") and key in parts)
    plain_output = usage.output_tokens - subsets
    if plain_output <= 0:
        return None
    cost = output_cost * min(usage.reasoning_tokens, plain_output) / plain_output
    tier = next((c for name, c in priced.breakdown if name.startswith("service_tier:")), None)
    if tier is not None:
        tokens = sum((c for name, c in priced.breakdown if name.endswith("_tokens")), Decimal(0))
        cost = cost * (tokens + tier) / tokens if tokens else cost
    return cost


def breakdown_json(priced: Priced, usage: Usage) -> str | None:
    """``{"parts": {dimension: usd}, "tool_fees_usd": usd, "reasoning_usd": usd,
    "unpriced": [dimension]}``. ``parts`` add up to the cost; reasoning is billed as output
    (so it is in ``output_tokens``' part), and ``reasoning_usd`` says how much of that it was."""
    if priced.cost_usd is None:
        return None
    parts = {name: _money(cost) for name, cost in priced.breakdown}
    fees = sum((cost for name, cost in priced.breakdown if name in PER_CALL_FEES), Decimal(0))
    doc: dict[str, object] = {"parts": parts, "tool_fees_usd": _money(fees)}
    reasoning = _reasoning_cost(priced, usage)
    if reasoning is not None:
        doc["reasoning_usd"] = _money(reasoning)
    if priced.unpriced:
        doc["unpriced"] = list(priced.unpriced)
    return json.dumps(doc, separators=(",", ":"))
