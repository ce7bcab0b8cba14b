"""Budgets: the file, calendar periods in a time zone, the spend kept current, alerts once."""

from __future__ import annotations

import textwrap
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from llm_usage.budgets.ledger import database_spend, fired_share, remember_share
from llm_usage.budgets.periods import period_bounds
from llm_usage.budgets.tracker import Alert, BudgetTracker, covers
from llm_usage.config import budgets as budgets_config
from llm_usage.config.budgets import Budget, BudgetPlan, load_budgets
from llm_usage.config.files import ConfigError
from llm_usage.store.schema import open_database

BERLIN = ZoneInfo("Europe/Berlin")
EXAMPLE = textwrap.dedent(budgets_config.__doc__.split("::")[1].split("Every key")[0])  # type: ignore[union-attr]
"""The file as the module's documentation (and the issue) writes it."""


def test_the_file_as_the_issue_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(
        EXAMPLE + "  - {name: alice, period: week, limit_usd: 5, scope: {key: alice-laptop, model: gpt-5}}\n"
    )
    plan = load_budgets(str(path), {"key-3fa9c1d2": "alice-laptop"})
    assert plan.timezone.key == "Europe/Berlin" and plan.webhook == "https://hooks.slack.com/services/..."
    daily, monthly, alice = plan.budgets
    assert (daily.period, daily.limit_usd, daily.action, daily.scope) == ("day", Decimal(20), "warn", ())
    assert monthly.scope == (("provider", "openai"),) and monthly.action == "block"
    assert monthly.alert_at == (Decimal("0.5"), Decimal("0.8"), Decimal("1"))  # the default
    assert alice.scope == (("key", "key-3fa9c1d2"), ("model", "gpt-5"))  # a label names the key


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("budgets: []", "budgets: must be a list"),
        ("timezone: Mars/Olympus\nbudgets: [{name: a, period: day, limit_usd: 1}]", "timezone: unknown time zone"),
        ("webhook: ftp://x\nbudgets: [{name: a, period: day, limit_usd: 1}]", "webhook: must be an http(s) URL"),
        ("budgets: [{name: a, period: fortnight, limit_usd: 1}]", "budgets[0] (a).period: must be one of"),
        ("budgets: [{name: a, period: day, limit_usd: -3}]", "budgets[0] (a).limit_usd: must be more than 0"),
        ("budgets: [{name: a, period: day, limit_usd: lots}]", "budgets[0] (a).limit_usd: must be a number"),
        ("budgets: [{name: a, period: day, limit_usd: 1, action: shout}]", "(a).action: must be one of warn, block"),
        ("budgets: [{name: a, period: day, limit_usd: 1, scope: {team: x}}]", "(a).scope.team: unknown scope"),
        ("budgets: [{name: a, period: day, limit_usd: 1, scope: {key: bob}}]", "(a).scope.key: 'bob' is neither"),
        ("budgets: [{name: a, period: day, limit_usd: 1, alert_at: [0]}]", "(a).alert_at: each share"),
        ("budgets: [{name: a, period: day, limit_usd: 1, limit: 2}]", "budgets[0].limit: unknown key"),
        ("budgets: [{name: a, period: day, limit_usd: 1}, {name: a, period: hour, limit_usd: 1}]", "used twice"),
        ("budget: []", "'budget': unknown key"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_budgets(str(path))
    assert str(path) in str(error.value) and problem in str(error.value), str(error.value)


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_periods_are_calendar_periods_in_the_time_zone_across_dst() -> None:
    # Berlin falls back at 01:00 UTC on 2026-10-25: that day is 25 hours, its 02:00 hour two
    day = period_bounds("day", BERLIN, _utc(2026, 10, 25, 12))
    assert day == (_utc(2026, 10, 24, 22), _utc(2026, 10, 25, 23)) and day[1] - day[0] == timedelta(hours=25)
    assert period_bounds("hour", BERLIN, _utc(2026, 10, 25, 1, 30)) == (_utc(2026, 10, 25, 0), _utc(2026, 10, 25, 2))
    spring = period_bounds("day", BERLIN, _utc(2026, 3, 29, 12))
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert period_bounds("week", BERLIN, _utc(2026, 11, 30, 12)) == (_utc(2026, 11, 29, 23), _utc(2026, 12, 6, 23))
    assert period_bounds("month", BERLIN, _utc(2026, 12, 31, 23, 30)) == (_utc(2026, 12, 31, 23), _utc(2027, 1, 31, 23))
    assert period_bounds("hour", ZoneInfo("Asia/Kolkata"), _utc(2026, 1, 1, 0, 10)) == (
        _utc(2025, 12, 31, 23, 30), _utc(2026, 1, 1, 0, 30))  # fmt: skip


def test_a_scope_covers_the_calls_it_names() -> None:
    budget = Budget("b", "day", Decimal(1), scope=(("model", "gpt-4o-mini"), ("provider", "openai")))
    assert covers(budget, {"provider": "openai", "model": "gpt-4o-mini-2024-07-18"})  # a dated version
    assert not covers(budget, {"provider": "openai", "model": "gpt-4o-mini-tts"})  # another model
    assert not covers(budget, {"provider": "openrouter", "model": "gpt-4o-mini"})
    assert not covers(budget, {"provider": "openai", "model": "gpt-4o"})
    assert covers(Budget("all", "day", Decimal(1)), {"provider": "x"})


class Recorder:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.fired: dict[tuple[str, datetime], Decimal] = {}

    def tracker(self, plan: BudgetPlan, spent: Decimal = Decimal(0), now: datetime | None = None) -> BudgetTracker:
        return BudgetTracker(
            plan,
            spend_of=lambda budget, start, end: spent,
            fired_of=lambda budget, start: self.fired.get((budget.name, start), Decimal(0)),
            remember=lambda budget, start, share: self.fired.__setitem__((budget.name, start), share),
            alert=self.alerts.append,
            now=now,
        )


def test_alerts_fire_once_per_threshold_and_blocking_starts_at_the_limit() -> None:
    budget = Budget("openai", "day", Decimal(10), scope=(("provider", "openai"),), action="block")
    plan = BudgetPlan(BERLIN, None, (budget,))
    recorder = Recorder()
    tracker = recorder.tracker(plan)
    now = datetime.now(UTC).timestamp()
    openai_call, other = {"provider": "openai"}, {"provider": "anthropic"}
    tracker.add(other, Decimal(50), now)  # out of scope
    tracker.add(openai_call, Decimal("4.99"), now)
    assert recorder.alerts == [] and tracker.refusal(openai_call) is None
    tracker.add(openai_call, Decimal("4"), now)  # 89.9%: past 50% and 80% at once -> one alert, the higher
    assert [a.share for a in recorder.alerts] == [Decimal("0.8")]
    tracker.add(openai_call, Decimal("0.5"), now)
    assert len(recorder.alerts) == 1 and tracker.refusal(openai_call) is None
    tracker.add(openai_call, Decimal("0.51"), now)
    assert [a.share for a in recorder.alerts] == [Decimal("0.8"), Decimal("1")]
    assert "reached its limit: $10.00 of $10.00" in recorder.alerts[-1].text
    refused = tracker.refusal(openai_call)
    assert refused is not None and refused[0] is budget and refused[1] == Decimal("10.00")
    assert tracker.refusal(other) is None
    [status] = tracker.status()
    assert status["state"] == "blocking" and status["share"] == 1.0 and status["spent_usd"] == 10.0


def test_a_restart_mid_period_keeps_the_spend_and_does_not_alert_again() -> None:
    budget = Budget("daily", "day", Decimal(10))
    plan = BudgetPlan(BERLIN, None, (budget,))
    recorder = Recorder()
    first = recorder.tracker(plan)
    first.add({}, Decimal(6), datetime.now(UTC).timestamp())
    assert [a.share for a in recorder.alerts] == [Decimal("0.5")]
    again = recorder.tracker(plan, spent=Decimal(6))  # the database says 6 spent; 50% already said
    assert len(recorder.alerts) == 1
    again.add({}, Decimal(3), datetime.now(UTC).timestamp())
    assert [a.share for a in recorder.alerts] == [Decimal("0.5"), Decimal("0.8")]


def test_a_new_period_starts_at_zero_and_a_call_counts_for_the_period_it_started_in() -> None:
    budget = Budget("hourly", "hour", Decimal(1), action="block")
    plan = BudgetPlan(ZoneInfo("UTC"), None, (budget,))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    tracker = Recorder().tracker(plan, now=start + timedelta(minutes=10))
    tracker.add({}, Decimal(2), (start - timedelta(minutes=1)).timestamp())  # started in the hour before
    assert tracker.refusal({}, start + timedelta(minutes=11)) is None
    tracker.add({}, Decimal(2), (start + timedelta(minutes=12)).timestamp())
    assert tracker.refusal({}, start + timedelta(minutes=13)) is not None
    assert tracker.refusal({}, start + timedelta(minutes=61)) is None  # the next hour


def test_concurrent_calls_are_each_counted_once() -> None:
    tracker = Recorder().tracker(BudgetPlan(BERLIN, None, (Budget("all", "month", Decimal(1000)),)))
    now = datetime.now(UTC).timestamp()

    def spend() -> None:
        for _ in range(1000):
            tracker.add({}, Decimal("0.01"), now)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.status()[0]["spent_usd"] == 80.0


def test_the_ledger_reads_a_scopes_spend_and_keeps_the_alerts_said(tmp_path: Path) -> None:
    path = str(tmp_path / "u.db")
    db = open_database(path)
    now = datetime.now(UTC)
    db.table("requests").insert_all([
        {"timestamp": now.timestamp(), "provider": "openai", "model": "gpt-4o-mini-2024-07-18", "cost_usd": 1.25},
        {"timestamp": now.timestamp(), "provider": "openai", "model": "gpt-4o-mini-tts", "cost_usd": 0.5},
        {"timestamp": now.timestamp(), "provider": "openai", "model": "gpt-4o", "cost_usd": 2.0},
        {"timestamp": now.timestamp(), "provider": "anthropic", "model": "claude", "cost_usd": 4.0},
        {"timestamp": (now - timedelta(days=40)).timestamp(), "provider": "openai", "model": "gpt-4o", "cost_usd": 9.0},
        {"timestamp": now.timestamp(), "provider": "openai", "model": "gpt-4o", "cost_usd": None},  # unpriced
    ])  # fmt: skip
    db.close()
    start, end = period_bounds("month", BERLIN, now)
    everything = Budget("all", "month", Decimal(100))
    assert database_spend(path, everything, start, end) == Decimal("7.75")
    mini = Budget("mini", "month", Decimal(100), scope=(("model", "gpt-4o-mini"),))
    assert database_spend(path, mini, start, end) == Decimal("1.25")
    assert fired_share(path, everything, start) == 0
    remember_share(path, everything, start, Decimal("0.8"))
    assert fired_share(path, everything, start) == Decimal("0.8")


def test_rate_limit_headers_become_numbers_and_times_only() -> None:
    from llm_usage.parsers.rate_limits import rate_limits

    now = 1_764_000_000.0
    openai_windows, retry = rate_limits((
        (b"x-ratelimit-limit-requests", b"500"), (b"x-ratelimit-remaining-requests", b"499"),
        (b"x-ratelimit-reset-requests", b"120ms"), (b"x-ratelimit-limit-tokens", b"200000"),
        (b"x-ratelimit-remaining-tokens", b"150000"), (b"x-ratelimit-reset-tokens", b"6m0s"),
        (b"retry-after", b"7"), (b"x-request-id", b"req_secret-ish"),
    ), now)  # fmt: skip
    requests, tokens = openai_windows
    assert (requests.name, requests.limit, requests.remaining, requests.resets_at) == ("requests", 500, 499, now + 0.12)
    assert (tokens.used_share, tokens.resets_at) == (0.25, now + 360) and retry == now + 7
    anthropic_windows, _ = rate_limits((
        (b"anthropic-ratelimit-input-tokens-limit", b"30000"),
        (b"anthropic-ratelimit-input-tokens-remaining", b"27000"),
        (b"anthropic-ratelimit-input-tokens-reset", b"2026-11-30T12:00:06Z"),
        (b"anthropic-ratelimit-unified-5h-utilization", b"0.42"),
        (b"anthropic-ratelimit-unified-5h-reset", b"1764504000"),
        (b"anthropic-ratelimit-tokens-limit", b"not a number"),
    ), now)  # fmt: skip
    by_name = {w.name: w for w in anthropic_windows}
    assert by_name["input-tokens"].used_share == pytest.approx(0.1)
    assert by_name["input-tokens"].resets_at == datetime(2026, 11, 30, 12, 0, 6, tzinfo=UTC).timestamp()
    assert (by_name["unified-5h"].used_share, by_name["unified-5h"].resets_at) == (0.42, 1764504000)
    assert "tokens" not in by_name  # garbage is dropped, never kept as text


@pytest.mark.parametrize("scope", ["provider", "model", "client", "project", "key"])
def test_each_scope_counts_only_its_calls(scope: str) -> None:
    inside = {
        "provider": "openai",
        "model": "gpt-5",
        "client": "Codex CLI",
        "project": "webshop",
        "key": "key-0000aaaa",
    }
    outside = {**inside, scope: "something-else"}
    budget = Budget("scoped", "day", Decimal(1), scope=((scope, inside[scope]),), action="block")
    tracker = Recorder().tracker(BudgetPlan(BERLIN, None, (budget,)))
    now = datetime.now(UTC).timestamp()
    tracker.add(outside, Decimal(5), now)
    assert tracker.refusal(inside) is None and tracker.status()[0]["spent_usd"] == 0
    tracker.add(inside, Decimal(1), now)
    assert tracker.refusal(inside) is not None and tracker.refusal(outside) is None
