"""What each budget has spent this period, kept current as calls are accounted.

At start (and when the file changes) each budget's spend is read from the database: the
period's rows, in scope. From then on every row the writer builds is added as it is built
(``add``, on the writer thread), so a check on the event loop (``refusal``) is a few
comparisons, and nothing is counted twice: the database is read once, before this
process adds its first row. A new period starts at zero (calls that started before it
count for the one they started in).

The share of each alert threshold reached is kept in the database (``llm_usage_settings``),
so a restart mid-period does not alert again for what was already said.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ..config.budgets import Budget, BudgetPlan
from .periods import period_bounds

logger = logging.getLogger(__name__)

Facts = dict[str, str | None]
"""A call's ``provider``, ``model``, ``client``, ``project`` and ``key``."""


@dataclass(frozen=True, slots=True)
class Alert:
    budget: str
    share: Decimal
    """The threshold crossed (1 = the limit)."""
    spent: Decimal
    limit: Decimal
    period_start: datetime
    resets: datetime
    action: str
    at: datetime

    @property
    def text(self) -> str:
        what = "reached its limit" if self.share >= 1 else f"passed {self.share * 100:.0f}% of its limit"
        blocked = (
            "; calls in its scope are refused until it resets" if self.share >= 1 and self.action == "block" else ""
        )
        return (
            f"llm-usage budget {self.budget!r} {what}: ${self.spent:.2f} of ${self.limit:.2f} this period "
            f"(resets {self.resets.isoformat(timespec='minutes')}){blocked}"
        )


class _State:
    __slots__ = ("budget", "end", "fired", "spent", "start")

    def __init__(self, budget: Budget, start: datetime, end: datetime, spent: Decimal, fired: Decimal) -> None:
        self.budget, self.start, self.end, self.spent, self.fired = budget, start, end, spent, fired


SpendOf = Callable[[Budget, datetime, datetime], Decimal]
"""What a budget's scope spent in ``[start, end)``, from the database."""
Fired = Callable[[Budget, datetime], Decimal]
"""The highest alert share already sent for a budget's period (0: none)."""


class BudgetTracker:
    def __init__(
        self,
        plan: BudgetPlan,
        spend_of: SpendOf,
        fired_of: Fired,
        remember: Callable[[Budget, datetime, Decimal], None],
        alert: Callable[[Alert], None],
        now: datetime | None = None,
    ) -> None:
        self.plan = plan
        self._remember, self._alert = remember, alert
        self._lock = threading.Lock()
        self.needs_model = any(b.action == "block" and any(n == "model" for n, _ in b.scope) for b in plan.budgets)
        """Whether a refusal needs the requested model (it costs a parse of the request body)."""
        moment = now or datetime.now(UTC)
        self._states: list[_State] = []
        for budget in plan.budgets:
            start, end = period_bounds(budget.period, plan.timezone, moment)
            self._states.append(_State(budget, start, end, spend_of(budget, start, end), fired_of(budget, start)))
        for state in self._states:  # a limit already passed says so at start (once a period)
            self._send(self._crossed(state, moment))

    def refusal(self, facts: Facts, now: datetime | None = None) -> tuple[Budget, Decimal, datetime] | None:
        """The first blocking budget in scope whose limit is reached: (budget, spent, resets)."""
        moment = now or datetime.now(UTC)
        with self._lock:
            for state in self._states:
                budget = state.budget
                if budget.action != "block" or not covers(budget, facts):
                    continue
                self._roll(state, moment)
                if state.spent >= budget.limit_usd:
                    return budget, state.spent, state.end
        return None

    def add(self, facts: Facts, cost: Decimal | None, at: float) -> None:
        """A call's cost (``at``: when it started), to every budget whose scope it is in."""
        if not cost:
            return
        moment = datetime.fromtimestamp(at, UTC)
        now = datetime.now(UTC)
        alerts: list[tuple[_State, Alert]] = []
        with self._lock:
            for state in self._states:
                if not covers(state.budget, facts):
                    continue
                self._roll(state, max(moment, now))
                if state.start <= moment < state.end:
                    state.spent += cost
                    alerts += self._crossed(state, now)
        self._send(alerts)  # outside the lock: the event loop's checks never wait on a database write

    def status(self, now: datetime | None = None) -> list[dict[str, object]]:
        """Each budget: spend, limit, share, state and when it resets (``/stats/budgets``)."""
        moment = now or datetime.now(UTC)
        out = []
        with self._lock:
            for state in self._states:
                self._roll(state, moment)
                budget = state.budget
                share = state.spent / budget.limit_usd
                first_alert = min(budget.alert_at)
                level = "exceeded" if share >= 1 else "warning" if share >= first_alert else "ok"
                out.append({
                    "name": budget.name,
                    "period": budget.period,
                    "timezone": self.plan.timezone.key,
                    "scope": dict(budget.scope),
                    "action": budget.action,
                    "limit_usd": float(budget.limit_usd),
                    "spent_usd": round(float(state.spent), 10),
                    "share": round(float(share), 4),
                    "state": "blocking" if level == "exceeded" and budget.action == "block" else level,
                    "period_start": state.start.isoformat(),
                    "resets_at": state.end.isoformat(),
                    "alert_at": [float(a) for a in budget.alert_at],
                })  # fmt: skip
        return out

    def _roll(self, state: _State, now: datetime) -> None:
        if now < state.end:
            return
        state.start, state.end = period_bounds(state.budget.period, self.plan.timezone, now)
        state.spent = Decimal(0)
        state.fired = Decimal(0)  # a new period: nothing said of it yet (a restart reads it at start)

    def _crossed(self, state: _State, now: datetime) -> list[tuple[_State, Alert]]:
        """The alert for the highest threshold newly crossed (under the lock), or none."""
        budget = state.budget
        share = state.spent / budget.limit_usd
        crossed = [a for a in budget.alert_at if a > state.fired and share >= a]
        if not crossed:
            return []
        state.fired = max(crossed)
        alert = Alert(budget.name, state.fired, state.spent, budget.limit_usd, state.start, state.end,
                      budget.action, now)  # fmt: skip
        return [(state, alert)]

    def _send(self, alerts: list[tuple[_State, Alert]]) -> None:
        for state, alert in alerts:
            try:
                self._remember(state.budget, alert.period_start, alert.share)
            except Exception:  # the alert is said regardless; a restart might say it again
                logger.exception("llm-usage: could not note budget %r's alert", state.budget.name)
            self._alert(alert)


DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})")
"""A dated version's suffix: ``-2024-07-18`` (OpenAI), ``-20241022`` (Anthropic)."""


def covers(budget: Budget, facts: Facts) -> bool:
    """Whether a call is in a budget's scope. A model scope covers the model's dated
    versions too (``gpt-4o-mini`` covers ``gpt-4o-mini-2024-07-18``, not ``gpt-4o-mini-tts``):
    a response names the version that served it."""
    for name, wanted in budget.scope:
        value = facts.get(name)
        if value == wanted:
            continue
        if name == "model" and value is not None and value.startswith(wanted) and DATED.fullmatch(value[len(wanted) :]):
            continue
        return False
    return True
