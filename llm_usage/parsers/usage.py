"""The one `Usage` value every parser returns.

Token semantics are the same for every provider (see CONTRACT.md):

- ``input_tokens``: every input token billed, cached ones included.
- ``output_tokens``: every output token billed, reasoning included.
- ``cache_read_tokens`` / ``cache_write_tokens`` / ``reasoning_tokens``: subsets of the
  above, ``None`` where the provider did not report them.

``details`` are the billed dimensions beyond those, named as genai-prices names them (its
``Usage`` keys, https://github.com/pydantic/genai-prices): subsets of input or output
(``cache_write_1h_tokens``, ``input_audio_tokens``, ``output_image_tokens``, ...) and
per-call fees (``web_searches``, ``storage_searches``, ...). ``service_tier`` is the tier
the provider says it served the call on (``flex``, ``priority``, ...).

``status`` says how far the numbers can be trusted: ``complete`` (the provider's final
usage was seen), ``partial`` (a stream was cut short; counts are what was seen) or
``missing`` (the provider sent no usage at all); a usage with ``implausible`` fields is
'invalid' whatever its status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

UsageStatus = Literal["complete", "partial", "missing"]


@dataclass(frozen=True, slots=True)
class Usage:
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    provider_cost_usd: Decimal | None = None
    details: tuple[tuple[str, int], ...] = ()
    """Billed dimensions beyond the counts above, ``(genai-prices usage key, count)``, sorted."""
    service_tier: str | None = None
    status: UsageStatus = "missing"
    error: str | None = None
    """The provider's own error message (HTTP error body, ``response.failed``, ...)."""
    warnings: tuple[str, ...] = ()
    """Things the parser skipped (an over-long line, undecodable JSON); never fatal."""
    implausible: tuple[str, ...] = ()
    """Fields of the provider's usage that cannot be true (``json_values.implausible``):
    the usage is then not trusted -- ``usage_status`` 'invalid', no price from it."""

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def has_counts(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None

    def with_(self, **changes: object) -> Usage:
        return replace(self, **changes)  # type: ignore[arg-type]


def details_of(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    """``Usage.details`` from counts by key: sorted, zeros left out."""
    return tuple(sorted((key, count) for key, count in counts.items() if count))


_TIER = re.compile(r"[a-z0-9][a-z0-9_.:+-]{0,63}")


def tier_name(value: object) -> str | None:
    """A service tier as a provider names it (``flex``, ``priority``, ``standard+fast``),
    lower-cased; anything else (not a short plain name) is not taken as one."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    return name if _TIER.fullmatch(name) else None
