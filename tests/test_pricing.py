"""Prices: provider > user > genai-prices > pricing.yaml; unknown -> None, never 0."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llm_usage.accounting.pricing import GENAI_SOURCE, Pricer, lookup_table, prefix_applies, table_cost
from llm_usage.config.prices import load_price_tables, parse_pricing
from llm_usage.parsers.usage import Usage

AT = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def pricer() -> Pricer:
    return Pricer(*load_price_tables(""))


def test_provider_reported_cost_wins(pricer: Pricer) -> None:
    usage = Usage(model="openai/gpt-4o", input_tokens=17, output_tokens=4, provider_cost_usd=Decimal("0.0000825"))
    priced = pricer.price("openrouter", "openrouter", usage, AT)
    assert (priced.cost_usd, priced.source) == (Decimal("0.0000825"), "provider")


def test_genai_prices_with_cache_read_and_write(pricer: Pricer) -> None:
    # claude-sonnet-4-5: $3 input, $15 output, $0.30 cache read, $3.75 cache write per MTok
    usage = Usage(
        model="claude-sonnet-4-5-20250929",
        input_tokens=1532,
        output_tokens=33,
        cache_read_tokens=1111,
        cache_write_tokens=418,
        status="complete",
    )
    priced = pricer.price("anthropic", "anthropic", usage, AT)
    expected = (Decimal(3) * 3 + Decimal("0.30") * 1111 + Decimal("3.75") * 418 + Decimal(15) * 33) / 1_000_000
    assert priced.cost_usd == expected
    assert priced.source == GENAI_SOURCE
    full = (Decimal(3) * 1532 + Decimal(15) * 33) / 1_000_000
    assert priced.cache_savings_usd == full - expected


def test_genai_prices_openai_cached_input(pricer: Pricer) -> None:
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per MTok
    usage = Usage(model="gpt-4o-2024-08-06", input_tokens=1000, output_tokens=100, cache_read_tokens=500)
    priced = pricer.price("openai", "openai", usage, AT)
    assert priced.cost_usd == (Decimal("2.5") * 500 + Decimal("1.25") * 500 + Decimal(10) * 100) / 1_000_000


def test_gemini_tiered_price_above_200k(pricer: Pricer) -> None:
    small = pricer.price("gemini", "google", Usage(model="gemini-2.5-pro", input_tokens=100_000, output_tokens=0), AT)
    large = pricer.price("gemini", "google", Usage(model="gemini-2.5-pro", input_tokens=300_000, output_tokens=0), AT)
    assert small.cost_usd is not None and large.cost_usd is not None
    assert large.cost_usd / 300_000 > small.cost_usd / 100_000  # the long-context tier costs more per token


def test_unknown_model_is_unpriced_never_zero(pricer: Pricer) -> None:
    priced = pricer.price("openai", "openai", Usage(model="gpt-99-imaginary", input_tokens=10, output_tokens=5), AT)
    assert priced.cost_usd is None and priced.source is None
    # and the miss is remembered, still None the second time
    assert (
        pricer.price("openai", "openai", Usage(model="gpt-99-imaginary", input_tokens=1, output_tokens=1), AT).cost_usd
        is None
    )


def test_no_usage_is_unpriced(pricer: Pricer) -> None:
    assert pricer.price("openai", "openai", Usage(model="gpt-4o"), AT).cost_usd is None
    assert pricer.price("openai", "openai", Usage(input_tokens=5, output_tokens=5), AT).cost_usd is None


def test_pricing_yaml_for_what_genai_prices_lacks(pricer: Pricer) -> None:
    local = pricer.price("ollama", None, Usage(model="llama3", input_tokens=26, output_tokens=6), AT)
    assert (local.cost_usd, local.source) == (Decimal(0), "pricing.yaml")


def test_user_prices_win_over_genai_prices() -> None:
    user = parse_pricing({"gpt-4o": {"input": "1", "output": "2", "cache_read": "0.5"}}, "mine.yaml", "user")
    _, builtin = load_price_tables("")
    pricer = Pricer(user, builtin)
    usage = Usage(model="gpt-4o-2024-08-06", input_tokens=1000, output_tokens=100, cache_read_tokens=400)
    priced = pricer.price("openai", "openai", usage, AT)
    assert priced.source == "user"
    assert priced.cost_usd == (Decimal(600) * 1 + Decimal(400) * Decimal("0.5") + Decimal(100) * 2) / 1_000_000
    assert priced.cache_savings_usd == Decimal(400) * Decimal("0.5") / 1_000_000


def test_longest_prefix_and_provider_scope_first() -> None:
    table = parse_pricing(
        {
            "providers": {
                "nvidia": {"meta/": {"input": 1, "output": 1}, "meta/llama-3.1-405b-": {"input": 5, "output": 5}}
            },
            "models": {"meta/llama-3.1-405b-instruct": {"input": 9, "output": 9}},
        },
        "p.yaml",
        "pricing.yaml",
    )
    assert lookup_table(table, "nvidia", "meta/llama-3.1-405b-instruct").prices.input == 5  # type: ignore[union-attr]
    assert lookup_table(table, "nvidia", "meta/llama-3.1-8b").prices.input == 1  # type: ignore[union-attr]
    assert lookup_table(table, "other", "meta/llama-3.1-405b-instruct").prices.input == 9  # type: ignore[union-attr]
    assert lookup_table(table, "other", "mistral") is None


@pytest.mark.parametrize(
    ("key", "model", "covered"),
    [
        ("gpt-4o", "gpt-4o", True),
        ("gpt-4o", "gpt-4o-2024-08-06", True),  # a dated snapshot of the same model
        ("gpt-4o", "gpt-4o-mini", False),  # a different, much cheaper model
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", True),
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", True),
        ("claude-3-7-sonnet", "claude-3-7-sonnet@20250219", True),
        ("llama3", "llama3:latest", True),
        ("llama3", "llama3.1", False),
        ("meta/", "meta/llama-3.1-8b-instruct", True),  # ends with a separator: a family
        ("", "anything", True),
    ],
)
def test_which_keys_cover_which_models(key: str, model: str, covered: bool) -> None:
    assert prefix_applies(key, model) is covered


def test_a_user_price_for_a_model_does_not_leak_to_its_cheaper_sibling() -> None:
    user = parse_pricing({"gpt-4o": {"input": "2.5", "output": "10"}}, "mine.yaml", "user")
    pricer = Pricer(user, load_price_tables("")[1])
    mini = pricer.price("openai", "openai", Usage(model="gpt-4o-mini", input_tokens=53, output_tokens=6), AT)
    assert mini.source == GENAI_SOURCE  # not the user's gpt-4o price
    dated = pricer.price("openai", "openai", Usage(model="gpt-4o-2024-08-06", input_tokens=53, output_tokens=6), AT)
    assert dated.source == "user"


def test_table_cost_defaults_cache_prices_to_input() -> None:
    prices = parse_pricing({"m": {"input": 2, "output": 4}}, "p", "user")["*"]["m"].prices
    usage = Usage(input_tokens=100, output_tokens=10, cache_read_tokens=60, cache_write_tokens=20)
    assert table_cost(prices, usage) == Decimal(100 * 2 + 10 * 4) / 1_000_000


GENAI_CASES = [
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5"),
    ("openai", "o3-mini"),
    ("openai", "text-embedding-3-small"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-3-5-sonnet-20240620"),
    ("anthropic", "claude-opus-4-6"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.0-flash"),
    ("moonshotai", "kimi-k2.5"),
    ("zai", "glm-4.6"),
    ("minimax", "MiniMax-M2"),
    ("openrouter", "moonshotai/kimi-k2.5"),
]
USAGES = [
    Usage(input_tokens=53, output_tokens=6),
    Usage(input_tokens=9299, output_tokens=577, cache_read_tokens=8448, reasoning_tokens=512),
    Usage(input_tokens=1532, output_tokens=33, cache_read_tokens=1111, cache_write_tokens=418),
    Usage(input_tokens=250_000, output_tokens=1000, cache_read_tokens=100_000),  # above 200k tiers
    Usage(input_tokens=4, output_tokens=0),
]


@pytest.mark.parametrize(("provider", "model"), GENAI_CASES)
def test_fast_path_agrees_with_genai_prices_calc_price(pricer: Pricer, provider: str, model: str) -> None:
    """Our per-token arithmetic on genai-prices' data must equal genai-prices' own calc_price."""
    import genai_prices

    for usage in USAGES:
        ours = pricer.price("x", provider, usage.with_(model=model), AT)
        counts = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        }
        theirs = genai_prices.calc_price(
            genai_prices.Usage(**{k: v for k, v in counts.items() if v}),
            model,
            provider_id=provider,
            genai_request_timestamp=AT,
        )
        assert ours.cost_usd == theirs.total_price, (model, usage)
