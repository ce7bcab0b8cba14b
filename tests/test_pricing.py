"""Prices: provider > user > genai-prices > pricing.yaml; unknown -> None, never 0."""

from __future__ import annotations

import json
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
    _, builtin, _ = load_price_tables("")
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
    # the dimensions beyond tokens: 1-hour cache writes, server tools, modalities
    Usage(
        input_tokens=10_508,
        output_tokens=400,
        cache_write_tokens=10_408,
        details=(("cache_write_1h_tokens", 10_408), ("web_searches", 3)),
    ),
    Usage(
        input_tokens=4_696,
        output_tokens=2_309,
        details=(("input_audio_tokens", 1_500), ("input_video_tokens", 3_096), ("output_image_tokens", 1_120)),
    ),
    Usage(input_tokens=2_000, output_tokens=100, details=(("storage_searches", 2), ("web_searches", 1))),
]


@pytest.mark.parametrize(("provider", "model"), GENAI_CASES)
def test_the_breakdown_adds_up_to_genai_prices_calc_price(pricer: Pricer, provider: str, model: str) -> None:
    """Every dimension goes to genai-prices' own calc_price, and the per-dimension
    breakdown the row keeps sums to exactly its total."""
    import genai_prices

    for usage in USAGES:
        ours = pricer.price("x", provider, usage.with_(model=model), AT)
        counts = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            **dict(usage.details),
        }
        theirs = genai_prices.calc_price(
            genai_prices.Usage(**{k: v for k, v in counts.items() if v}),
            model,
            provider_id=provider,
            genai_request_timestamp=AT,
        )
        assert ours.cost_usd == theirs.total_price, (model, usage)
        assert sum(cost for _, cost in ours.breakdown) == ours.cost_usd


@pytest.mark.parametrize(
    ("provider", "model", "usage", "billed"),
    [
        # The measured calls, as the providers bill them.
        pytest.param("anthropic", "claude-sonnet-4-5-20250929",
                     Usage(input_tokens=10_408, output_tokens=0, cache_write_tokens=10_408,
                           details=(("cache_write_1h_tokens", 10_408),)),
                     Decimal("0.062448"), id="claude-1h-cache-writes-at-2x-input"),  # 10,408 x $6/M
        pytest.param("anthropic", "claude-sonnet-4-5-20250929",
                     Usage(input_tokens=1_000, output_tokens=100, details=(("web_searches", 3),)),
                     Decimal("0.003") + Decimal("0.0015") + Decimal("0.03"), id="claude-web-search-10-per-1000"),
        pytest.param("google", "gemini-3-pro-image-preview",
                     Usage(input_tokens=1_000, output_tokens=2_309, details=(("output_image_tokens", 1_120),)),
                     Decimal("0.002") + 1_189 * Decimal("12") / 1_000_000 + 1_120 * Decimal("120") / 1_000_000,
                     id="gemini-image-output-at-120-per-million"),
        pytest.param("google", "gemini-2.0-flash",
                     Usage(input_tokens=4_596, output_tokens=0,
                           details=(("input_audio_tokens", 1_500), ("input_video_tokens", 3_096))),
                     1_500 * Decimal("0.7") / 1_000_000 + 3_096 * Decimal("0.1") / 1_000_000,
                     id="gemini-audio-input-at-its-own-price"),
    ],
)  # fmt: skip
def test_billed_dimensions_reach_the_price(
    pricer: Pricer, provider: str, model: str, usage: Usage, billed: Decimal
) -> None:
    priced = pricer.price("x", provider, usage.with_(model=model), AT)
    assert priced.cost_usd == billed and not priced.unpriced


def test_a_per_call_fee_with_no_known_price_is_said_not_hidden(pricer: Pricer) -> None:
    usage = Usage(model="gpt-4o-mini", input_tokens=100, output_tokens=10, details=(("code_executions", 2),))
    priced = pricer.price("openai", "openai", usage, AT)
    assert priced.cost_usd is not None and priced.unpriced == ("code_executions",)
    free = Usage(model="claude-sonnet-4-5", input_tokens=100, output_tokens=10, details=(("web_fetches", 2),))
    assert pricer.price("anthropic", "anthropic", free, AT).unpriced == ()  # no charge beyond its tokens


def test_the_tier_served_sets_the_price(pricer: Pricer) -> None:
    base = Usage(model="o3-2025-04-16", input_tokens=10_000, output_tokens=2_000, cache_read_tokens=4_000)
    standard = pricer.price("openai", "openai", base.with_(service_tier="default"), AT)
    flex = pricer.price("openai", "openai", base.with_(service_tier="flex"), AT)
    assert standard.cost_usd == pricer.price("openai", "openai", base, AT).cost_usd
    assert flex.cost_usd == standard.cost_usd / 2 and not flex.unpriced  # o3 on flex: half price
    assert flex.breakdown[-1] == ("service_tier:flex", -standard.cost_usd / 2)
    assert sum(cost for _, cost in flex.breakdown) == flex.cost_usd
    searched = base.with_(service_tier="flex", details=(("web_searches", 2),))
    with_fee = pricer.price("openai", "openai", searched, AT)
    assert with_fee.cost_usd == flex.cost_usd + Decimal("0.02")  # the $10/1,000 fee is not halved
    scale = pricer.price("openai", "openai", base.with_(service_tier="scale"), AT)
    assert scale.cost_usd == standard.cost_usd and scale.unpriced == ("service_tier:scale",)


def test_anthropic_tier_parts_multiply(pricer: Pricer) -> None:
    base = Usage(model="claude-opus-4-6", input_tokens=1_000_000, output_tokens=0)
    plain = pricer.price("anthropic", "anthropic", base, AT).cost_usd
    assert plain is not None
    fast_us = pricer.price("anthropic", "anthropic", base.with_(service_tier="standard+fast+geo:us"), AT)
    assert fast_us.cost_usd == plain * 6 * Decimal("1.1")
    priority = pricer.price("anthropic", "anthropic", base.with_(service_tier="priority"), AT)
    assert priority.unpriced == ("service_tier:priority",)  # a committed-spend contract: no list price


def test_a_bad_tier_rule_names_its_file_and_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llm_usage.config.files import ConfigError

    bad = tmp_path / "prices.yaml"
    bad.write_text("service_tiers:\n  openai:\n    flex: {source: https://x, prices: {gpt-5: cheap}}\n")
    with pytest.raises(
        ConfigError, match=r"prices.yaml: service_tiers.openai.flex.prices.gpt-5: 'cheap' is not a number"
    ):
        load_price_tables(str(bad))


def test_fetched_price_data_is_used_and_named(pricer: Pricer) -> None:
    """``llm_usage_update_prices``: genai-prices' updater installs a newer snapshot; the next
    call is priced from it, and its cost_source says which data it was."""
    from genai_prices import data_snapshot

    usage = Usage(model="gpt-4o-mini", input_tokens=1000, output_tokens=100)
    bundled = data_snapshot.get_snapshot()
    fetched = data_snapshot.DataSnapshot(providers=bundled.providers, from_auto_update=True,
                                         timestamp=datetime(2026, 11, 30, 12, 0))  # fmt: skip
    data_snapshot.set_custom_snapshot(fetched)
    try:
        priced = pricer.price("openai", "openai", usage, AT)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert priced.source is not None and priced.source.startswith(f"{GENAI_SOURCE} (data of 2026-11-30")
    assert pricer.price("openai", "openai", usage, AT).source == GENAI_SOURCE


def test_details_genai_prices_cannot_split_are_named_not_guessed(pricer: Pricer) -> None:
    """Cached tokens and audio tokens, but not how many cached tokens were audio: genai-prices
    refuses to guess (audio cache reads have their own price), so the plain counts are
    priced and the audio is named as not priced -- never a silently wrong figure."""
    usage = Usage(model="gemini-2.5-flash", input_tokens=2000, output_tokens=10, cache_read_tokens=1000,
                  details=(("input_audio_tokens", 1500),))  # fmt: skip
    priced = pricer.price("gemini", "google", usage, AT)
    plain = pricer.price("gemini", "google", usage.with_(details=()), AT)
    assert priced.cost_usd == plain.cost_usd and priced.unpriced == ("input_audio_tokens",)


def test_the_reasoning_share_is_priced_as_the_output_it_is_part_of(pricer: Pricer) -> None:
    from llm_usage.accounting.row import breakdown_json

    usage = Usage(model="o3", input_tokens=1000, output_tokens=1000, reasoning_tokens=800, service_tier="flex")
    priced = pricer.price("openai", "openai", usage, AT)
    doc = json.loads(breakdown_json(priced, usage) or "{}")
    output_on_flex = Decimal(1000) * Decimal(8) / 1_000_000 / 2
    assert Decimal(str(doc["reasoning_usd"])) == output_on_flex * Decimal("0.8")


@pytest.mark.parametrize(
    ("value", "name"),
    [("flex", "flex"), ("Priority", "priority"), ("standard+fast+geo:us", "standard+fast+geo:us"),
     ("x" * 65, None), ("<script>", None), (7, None), ("", None), ("sk-ant-oat01 secret", None)],
)  # fmt: skip
def test_a_tier_is_a_short_plain_name_or_nothing(value: object, name: str | None) -> None:
    from llm_usage.parsers.usage import tier_name

    assert tier_name(value) == name
