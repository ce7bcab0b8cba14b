"""``python -m llm_usage report``: the terminal's tables agree to the cent with the stats API
of a running proxy on the same database, in every view."""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_usage.commands import main
from llm_usage.commands.report import usd
from llm_usage.store.schema import open_database
from tests.support.gen_db import generate
from tests.support.harness import ROOT, Proxy

TZ = "America/Los_Angeles"
VIEWS = {
    # view -> (stats endpoint, its parameters, where it lists rows, the columns naming a row)
    "daily": ("timeseries", {"bucket": "day", "days": "30"}, "points", ("start",)),
    "weekly": ("timeseries", {"bucket": "week", "since": "2026-01-05"}, "points", ("start",)),
    "monthly": ("timeseries", {"bucket": "month", "since": "2025-12-01"}, "points", ("start",)),
    "sessions": ("by-session", {"days": "30", "limit": "20"}, "sessions", ("session_id",)),
    "models": ("by-model", {"days": "30"}, "models", ("provider", "model")),
    "projects": ("by-project", {"days": "30", "provider": "anthropic"}, "projects", ("project",)),
}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "usage.db"
    generate(path, rows=4000, seed=11)
    return path


def _report(db_path: Path, view: str, params: dict[str, str], *extra: str) -> str:
    options = [f"--{name}={value}" for name, value in params.items() if name != "bucket"]
    result = subprocess.run(
        [sys.executable, "-m", "llm_usage", "--db", str(db_path), "report", view, f"--tz={TZ}", *options, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def _table(text: str) -> list[list[str]]:
    """The body and footer rows of a rich table printed to a pipe."""
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]


def _dollars(cell: str) -> float | None:
    return None if cell == "unpriced" else float(cell.replace("$", "").replace(",", ""))


def test_every_view_agrees_to_the_cent_with_the_stats_api(db_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "usage.db"
    shutil.copy(db_path, copy)  # the proxy may migrate its own copy; the report reads the original
    proxy = Proxy(tmp_path, [], db_path=copy)
    try:
        for view, (endpoint, params, listed, names) in VIEWS.items():
            answer = httpx.get(f"{proxy.url}/stats/{endpoint}", params={**params, "tz": TZ}, timeout=30).json()
            api = [row for row in answer[listed] if row["requests"]]
            assert api, view
            extra = ("--limit", params["limit"]) if "limit" in params else ()
            rows = _table(_report(db_path, view, {k: v for k, v in params.items() if k != "limit"}, *extra))
            *body, footer = rows
            assert len(body) == len(api), view
            header = 2 if view == "models" else 1
            for shown, row in zip(body, api, strict=True):
                key = [str(row[n] or "-") for n in names]
                if view in ("daily", "weekly", "monthly"):
                    key = [row["start"][: 7 if view == "monthly" else 10]]
                assert shown[:header] == key[:header] or shown[0].startswith(key[0][:8]), (view, shown, key)
                assert shown[-1] == usd(row["cost_usd"]), (view, shown, row["cost_usd"])
                cost = _dollars(shown[-1])
                assert row["cost_usd"] is None or abs(cost - row["cost_usd"]) < 0.005  # type: ignore[operator]
                assert shown[-6] == f"{row['requests']:,}"
            whole = sum(row["cost_usd"] or 0 for row in api)
            assert abs(_dollars(footer[-1]) - whole) < 0.005, view  # type: ignore[operator]
            if view != "sessions":  # every call in the window: the summary's total too
                summary = httpx.get(f"{proxy.url}/stats/summary", params={**params, "tz": TZ}, timeout=30).json()
                if "bucket" not in params:
                    assert abs(_dollars(footer[-1]) - summary["totals"]["total_cost_usd"]) < 0.005, view  # type: ignore[operator]
                    assert footer[-6] == f"{summary['totals']['total_requests']:,}"
            as_json = json.loads(_report(db_path, view, {k: v for k, v in params.items() if k != "limit"}, "--json",
                                         *extra))  # fmt: skip
            assert [r["cost_usd"] for r in as_json["rows"]] == [r["cost_usd"] for r in api]
            assert as_json["totals"]["requests"] == sum(r["requests"] for r in api)
    finally:
        proxy.stop()


def _run(db_path: Path, capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(["--db", str(db_path), "report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_defaults_bad_options_and_an_empty_window(db_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    code, out, _ = _run(db_path, capsys)  # daily, the last 30 days, in this machine's zone
    assert code == 0 and "llm-usage · daily" in out and "(Europe/Berlin)" in out
    assert "\x1b[" not in out  # no colour into a pipe
    days = [row[0] for row in _table(out)[:-1]]
    assert days == sorted(days) and 1 <= len(days) <= 30
    code, out, _ = _run(db_path, capsys, "monthly", "--all", "--json")
    assert code == 0 and json.loads(out)["window"]["since"] is None
    for args, named in (
        (("--days", "lots"), "--days: must be a whole number"),
        (("--tz", "Mars/Olympus"), "--tz: unknown time zone"),
        (("--all", "--days", "3"), "--all: cannot be combined"),
        (("sessions", "--limit", "0"), "--limit: must be from 1 to 500"),
        (("--project", "no spaces"), "--project:"),
    ):
        code, _, err = _run(db_path, capsys, *args)
        assert code == 2 and err.startswith(f"report: {named}"), (args, err)
        assert "Traceback" not in err
    code, out, _ = _run(db_path, capsys, "--since", "2001-01-01", "--until", "2001-02-01")
    assert code == 0 and re.search(r"No calls in this window", out)
    code, _, err = _run(Path(str(db_path) + ".missing"), capsys)
    assert code == 2 and "no database at" in err


def test_hostile_names_are_text_and_a_narrow_terminal_keeps_what_matters(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """A model or session id a client chose is shown as it is, never read as rich markup
    (``[/]`` would crash the table); at 60 columns the least needed columns are left out."""
    from llm_usage.commands.report import render

    path = tmp_path / "hostile.db"
    db = open_database(str(path))
    now = datetime.now(UTC).timestamp()
    db.table("requests").insert_all([
        {"timestamp": now - 60, "provider": "openai", "model": name, "session_id": name, "input_tokens": 10,
         "output_tokens": 5, "cost_usd": 0.25, "duration_ms": 900.0, "usage_status": "complete"}
        for name in ("gpt[/]", "[bold red]boom", "[link=http://evil.example]x")
    ])  # fmt: skip
    db.close()
    for view in ("models", "sessions"):
        code, out, err = _run(path, capsys, view, "--tz", "UTC")
        assert code == 0 and "Traceback" not in err, err
        assert "gpt[/]" in out and "[bold red]boom" in out and "[link=http://evil.example]x" in out

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("NO_COLOR", "1")
    answer = json.loads(_run(path, capsys, "models", "--tz", "UTC", "--json")[1])
    assert "models" not in answer and len(answer["rows"]) == 3  # the rows once
    screen = Terminal()
    render(answer, str(path), screen)
    lines = screen.getvalue().splitlines()
    assert all(len(line) <= 60 for line in lines), lines
    assert "Cost" in screen.getvalue() and "$0.75" in screen.getvalue() and "left out" in screen.getvalue()
    assert "\x1b[" not in screen.getvalue()


def test_a_database_without_calls_yet(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a 0-byte file: the proxy has not written yet
    code, out, err = _run(path, capsys, "daily")
    assert code == 0 and "No calls recorded" in out and not err
