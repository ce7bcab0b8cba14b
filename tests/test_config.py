"""Options and config files: validated at start, errors name the file and the key."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from llm_usage.config.files import ConfigError, env_default, read_dotenv
from llm_usage.config.prices import load_price_tables, parse_pricing
from llm_usage.config.providers import build_providers, load_providers, merge_providers
from llm_usage.proxy.settings import switch
from tests.support.harness import MITMDUMP, ROOT, free_port, mitmdump_command

OLLAMA = {"llm_usage_ollama_base_url": "http://localhost:11434"}


def test_builtin_providers_are_the_ten_of_the_design() -> None:
    providers = load_providers("", OLLAMA)
    assert {slug: (p.base_url, p.format) for slug, p in providers.items()} == {
        "openai": ("https://api.openai.com", "openai"),
        "anthropic": ("https://api.anthropic.com", "anthropic"),
        "gemini": ("https://generativelanguage.googleapis.com", "gemini"),
        "nvidia": ("https://integrate.api.nvidia.com", "openai"),
        "openrouter": ("https://openrouter.ai", "openai"),
        "moonshot": ("https://api.moonshot.ai", "openai"),
        "zai": ("https://api.z.ai", "openai"),
        "minimax": ("https://api.minimax.io", "openai"),
        "ollama": ("http://localhost:11434", "ollama"),
        "ollama-cloud": ("https://ollama.com", "openai"),
    }


def test_user_file_merges_per_slug(tmp_path: Path) -> None:
    user = tmp_path / "p.yaml"
    user.write_text(
        "openai: {base_url: 'http://127.0.0.1:9100'}\ngroq: {base_url: 'https://api.groq.com/openai', format: openai}\n"
    )
    providers = load_providers(str(user), OLLAMA)
    assert providers["openai"].base_url == "http://127.0.0.1:9100" and providers["openai"].format == "openai"
    assert providers["openai"].inject_stream_usage  # kept from the built-in entry
    assert providers["groq"].base_path == "/openai" and providers["groq"].port == 443
    assert providers["ollama"].base_url == "http://localhost:11434"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("openai: {base_url: 'ftp://x'}", "openai.base_url"),
        ("openai: {base_url: 'https://user:pw@x.com'}", "openai.base_url"),
        ("openai: {format: soap}", "openai.format"),
        ("openai: {colour: blue}", "openai.colour"),
        ("groq: {format: openai}", "groq.base_url"),
        ("stats: {base_url: 'http://x', format: openai}", "stats"),
        ("Bad Slug: {base_url: 'http://x', format: openai}", "Bad Slug"),
        ("openai: {inject_stream_usage: 'yes'}", "openai.inject_stream_usage"),
        ("groq: {base_url: 'https://api.groq.com/openai'}", "groq.format: missing"),
        ("- just\n- a list", "must be a mapping"),
        ("openai: [1, 2", "not valid YAML"),
    ],
)
def test_bad_provider_files_name_the_key(tmp_path: Path, content: str, named: str) -> None:
    user = tmp_path / "p.yaml"
    user.write_text(content)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_providers(str(user), OLLAMA)


def test_missing_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_providers("/nonexistent/nope.yaml", OLLAMA)


def test_merge_and_build_are_pure() -> None:
    merged = merge_providers(
        {"a": {"base_url": "http://a", "format": "openai"}}, {"a": {"format": "anthropic"}}, "b", "u"
    )
    assert build_providers(merged, {}, "u")["a"].format == "anthropic"


def test_pricing_flat_and_structured_forms(tmp_path: Path) -> None:
    flat = parse_pricing({"my-model": {"input": 1.0, "output": "2", "cache_read": 0.1}}, "u.yaml", "user")
    assert str(flat["*"]["my-model"].prices.output) == "2"
    structured = parse_pricing({"providers": {"nvidia": {"meta/": {"input": "0.1", "output": "0.2"}}}}, "p", "x")
    assert "meta/" in structured["nvidia"]
    user = tmp_path / "prices.json"
    user.write_text('{"my-model": {"input": 1.0, "output": 2.0}}')
    user_table, builtin, _tiers = load_price_tables(str(user))
    assert user_table["*"]["my-model"].source == "user"
    assert builtin["ollama"][""].source == "pricing.yaml"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"m": {"input": 1}}, r"m\.output: missing"),
        ({"m": {"input": -1, "output": 1}}, r"m\.input"),
        ({"m": {"input": "cheap", "output": 1}}, r"m\.input"),
        ({"m": {"input": 1, "output": 1, "cached": 1}}, r"m\.cached: unknown key"),
        ({"m": [1, 2]}, r"models\.m"),
    ],
)
def test_bad_prices_name_the_key(data: object, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        parse_pricing(data, "prices.yaml", "user")


def test_dotenv_and_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nexport PROXY_DB_PATH='/data/u.db'\nOLLAMA_BASE_URL=http://gpu:11434 # box\n")
    values = read_dotenv(env)
    assert values == {"PROXY_DB_PATH": "/data/u.db", "OLLAMA_BASE_URL": "http://gpu:11434"}
    monkeypatch.delenv("PROXY_DB_PATH", raising=False)
    assert env_default("PROXY_DB_PATH", "./usage.db", values) == "/data/u.db"
    monkeypatch.setenv("PROXY_DB_PATH", "/env/u.db")
    assert env_default("PROXY_DB_PATH", "./usage.db", values) == "/env/u.db"
    assert env_default("NOT_SET_ANYWHERE", "d", {}) == "d"


def _start_failure(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Start mitmdump with the addon; it must exit non-zero. Returns what it printed."""
    if not any(arg.startswith("llm_usage_db=") for arg in args):
        args = ("--set", f"llm_usage_db={tmp_path / 'u.db'}", *args)
    result = subprocess.run(
        [
            str(MITMDUMP),
            "-s",
            str(ROOT / "addon.py"),
            "--mode",
            "reverse:http://127.0.0.1:9",
            "-p",
            str(free_port()),
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_bad_config_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("openai: {format: soap}\n")
    output = _start_failure(tmp_path, "--set", f"llm_usage_providers={bad}")
    assert "openai.format" in output and "soap" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("option", "content", "named"),
    [
        (
            "llm_usage_pricing",
            "my-model: {input: lots, output: 1}\n",
            "llm_usage_pricing: {file}: models.my-model.input",
        ),
        (
            "llm_usage_pricing",
            "providers: {opneai: {gpt-4o: {input: 1, output: 2}}}\n",
            "llm_usage_pricing: {file}: providers.opneai: unknown provider",
        ),
        ("llm_usage_providers", "groq: {base_url: 'https://x'}\n", "llm_usage_providers: {file}: groq.format: missing"),
        ("llm_usage_db", None, "llm_usage_db: cannot use '/proc/nope/usage.db'"),
    ],
)
def test_bad_values_at_start_are_refused_naming_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, option: str, content: str | None, named: str
) -> None:
    """At start-up the refusal is a logged error, which makes mitmproxy exit (the e2e test
    above shows it does); nothing is started with the bad value."""
    from mitmproxy.test import taddons

    from llm_usage.proxy.addon import LlmUsage

    file = tmp_path / "bad.yaml"
    value = "/proc/nope/usage.db" if content is None else str(file)
    if content is not None:
        file.write_text(content)
    addon = LlmUsage()
    with taddons.context(addon) as tctx:
        tctx.options.update(**{"llm_usage_db": str(tmp_path / "u.db"), option: value})
        addon.configure(set(tctx.options.keys()))
        assert addon.settings.writer is None
    assert f"llm-usage: {named.format(file=file)}" in caplog.text


def test_missing_requirements_are_named_not_a_traceback(tmp_path: Path) -> None:
    """mitmproxy installed on its own, without the addon's requirements."""
    blocker = tmp_path / "blocked" / "genai_prices"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError('blocked for the test', name='genai_prices')\n")
    output = _start_failure(tmp_path, env={"PYTHONPATH": str(blocker.parent)})
    assert "missing Python package 'genai_prices'" in output and "requirements.txt" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "llm_usage_update_prices=maybe"], "llm_usage_update_prices: must be true or false, not 'maybe'"),
        (
            ["--set", "llm_usage_stats_tokn=abc"],
            "llm_usage_stats_tokn: no such option (did you mean llm_usage_stats_token?)",
        ),
    ],
)
def test_a_mistyped_option_stops_the_proxy_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    """mitmproxy would otherwise unload the addon over a bad yes/no value, or keep a misspelt
    option aside, without a word: the proxy would run on recording nothing, or without its token."""
    done = subprocess.run(
        mitmdump_command(free_port(), "--set", f"llm_usage_db={tmp_path / 'u.db'}", *args),
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and message in done.stdout + done.stderr


def test_yes_no_options_take_the_usual_spellings() -> None:
    assert [switch(v) for v in ("true", "YES", "on", "1", "false", "no", "Off", "0", "")] == [True] * 4 + [False] * 5
    with pytest.raises(ValueError, match="must be true or false"):
        switch("maybe")
