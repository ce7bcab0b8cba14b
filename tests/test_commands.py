"""``python -m llm_usage`` commands, on a real database."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llm_usage.commands import main
from llm_usage.store.schema import open_database
from llm_usage.web.queries import REQUEST_COLUMNS
from tests.support.gen_db import generate

HOSTILE = ('=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\tTAB")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "usage.db"
    generate(path, rows=2000, seed=9)
    db = open_database(str(path))
    now = datetime.now(UTC).timestamp()
    db.table("requests").insert_all(
        {"timestamp": now - i, "provider": "openrouter", "model": text, "endpoint": "/x", "method": "POST",
         "error": text, "cache_savings_usd": -0.5, "status_code": 500}
        for i, text in enumerate(HOSTILE)
    )  # fmt: skip
    db.close()
    return path


def test_csv_has_every_row_the_filters_select_and_runs_no_formula(db_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--db", str(db_path), "export", "--format", "csv", "--days", "3660"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert tuple(rows[0]) == REQUEST_COLUMNS
    total = sqlite3.connect(db_path).execute("SELECT count(*) FROM requests").fetchone()[0]
    assert len(rows) - 1 == total
    position = {name: i for i, name in enumerate(REQUEST_COLUMNS)}
    hostile = [r for r in rows[1:] if r[position["provider"]] == "openrouter" and r[position["status_code"]] == "500"]
    assert {r[position["model"]] for r in hostile} == {"'" + text for text in HOSTILE}
    assert all(r[position["error"]].startswith("'") for r in hostile)
    assert all(r[position["cache_savings_usd"]] == "-0.5" for r in hostile)  # a number stays a number


def test_jsonl_with_filters(db_path: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "openai.jsonl"
    assert main(["--db", str(db_path), "export", "--format", "jsonl", "--provider", "openai", "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    want = sqlite3.connect(db_path).execute("SELECT count(*) FROM requests WHERE provider = 'openai'").fetchone()[0]
    assert len(lines) == want > 0 and all(tuple(line) == REQUEST_COLUMNS for line in lines)
    assert all(line["provider"] == "openai" for line in lines)
    times = [line["timestamp"] for line in lines]
    assert times == sorted(times)  # oldest first
    assert f"{want:,} row(s)" in capsys.readouterr().err


def test_a_bad_filter_names_itself(db_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--db", str(db_path), "export", "--days", "lots"]) == 2
    assert "--days: must be a whole number" in capsys.readouterr().err
    assert main(["--db", str(db_path) + ".missing", "export"]) == 2
    assert "no database at" in capsys.readouterr().err


def test_the_status_line_for_claude_code(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "usage.db"
    db = open_database(str(path))
    now = datetime.now(UTC).timestamp()
    db.table("requests").insert_all([
        {"timestamp": now - 5, "provider": "anthropic", "model": "claude-sonnet-4-5", "cost_usd": 0.25,
         "session_id": "5d2962ec"},
        {"timestamp": now - 4, "provider": "anthropic", "model": "claude-haiku-4-5", "cost_usd": 0.5,
         "session_id": "5d2962ec"},
        {"timestamp": now - 3, "provider": "openai", "model": "gpt-5", "cost_usd": 1.0},
        {"timestamp": now - 3 * 86400, "provider": "openai", "model": "gpt-5", "cost_usd": 100.0},  # not today
    ])  # fmt: skip
    db.close()
    claude = json.dumps({"session_id": "5d2962ec", "model": {"id": "claude-sonnet-4-5", "display_name": "Sonnet"}})
    monkeypatch.setattr("sys.stdin", io.StringIO(claude))
    assert main(["--db", str(path), "statusline"]) == 0
    assert capsys.readouterr().out.strip() == "$1.75 today · $0.75 this session (2 calls) · claude-haiku-4-5"
    monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
    assert main(["--db", str(path), "statusline"]) == 0
    assert capsys.readouterr().out.strip() == "$1.75 today · gpt-5"
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    assert main(["--db", str(tmp_path / "none.db"), "statusline"]) == 0
    assert capsys.readouterr().out.strip() == "llm-usage: no database yet"
