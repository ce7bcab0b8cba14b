"""The database opens in Datasette as it is, with the shipped metadata's canned queries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from tests.support.gen_db import generate
from tests.support.harness import ROOT

datasette_app = pytest.importorskip("datasette.app", reason="datasette is not installed (requirements-test.txt)")


def test_the_canned_queries_answer_on_a_real_database(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "usage.db"
    generate(path, rows=3000, seed=5)
    metadata = yaml.safe_load((ROOT / "docs" / "datasette.yaml").read_text())

    async def ask() -> dict[str, list[dict[str, object]]]:
        ds = datasette_app.Datasette([str(path)], metadata=metadata)
        await ds.invoke_startup()
        answers = {}
        for name in metadata["databases"]["usage"]["queries"]:
            response = await ds.client.get(f"/usage/{name}.json?_shape=array&_size=max")
            assert response.status_code == 200, (name, response.text)
            answers[name] = response.json()
        tables = await ds.client.get("/usage.json")
        assert tables.status_code == 200
        shown = [t["name"] for t in tables.json()["tables"] if not t["hidden"]]
        assert shown == ["requests"], shown  # the derived tables stay out of the way
        return answers

    answers = asyncio.run(ask())
    conn = sqlite3.connect(path)
    total, calls = conn.execute("SELECT total(cost_usd), count(*) FROM requests").fetchone()
    days = answers["spend_per_day"]
    assert sum(d["calls"] for d in days) == calls and sum(d["cost_usd"] for d in days) == pytest.approx(total, rel=1e-3)
    sessions = answers["spend_per_session"]
    assert len(sessions) == conn.execute("SELECT count(DISTINCT session_id) FROM requests").fetchone()[0] > 0
    assert sum(p["calls"] for p in answers["spend_per_project"]) == calls
    costs = [c["cost_usd"] for c in answers["most_expensive_calls"]]
    assert (
        costs == sorted(costs, reverse=True)
        and costs[0] == conn.execute("SELECT max(cost_usd) FROM requests").fetchone()[0]
    )
