"""``/stats/export`` through a real ``mitmdump``: the same bytes as ``python -m llm_usage
export``, behind the token, parameters checked, streamed from the loopback export server
that answers no one without the proxy's secret."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mitmproxy import http, io

from llm_usage.commands import main
from llm_usage.web.exports import SECRET_HEADER, ExportServer
from llm_usage.web.queries import EXPORT_PAGE, REQUEST_COLUMNS
from tests.support.gen_db import generate
from tests.support.harness import Proxy

TOKEN = "s3cret-export"


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export-http") / "usage.db"
    generate(path, rows=3000, seed=21)
    return path


def test_export_over_http_is_the_commands_output_streamed(db_path: Path, tmp_path: Path, capsys: Any) -> None:
    saved = tmp_path / "flows.mitm"
    labels = tmp_path / "keys.yaml"
    labels.write_text("alice: key-5c0ffee1\n")
    proxy = Proxy(tmp_path, ["--set", f"llm_usage_stats_token={TOKEN}", "-w", str(saved),
                             "--set", f"llm_usage_key_labels={labels}"], db_path=db_path)  # fmt: skip
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        url = f"{proxy.url}/stats/export"
        assert httpx.get(url, params={"format": "csv"}).status_code == 401
        bad = httpx.get(url, params={"format": "xml"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"].startswith("format:")
        bad = httpx.get(url, params={"days": "lots"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"].startswith("days:")
        bad = httpx.get(url, params={"limit": "5"}, headers=auth)
        assert bad.status_code == 400 and "'limit': unknown parameter" in bad.json()["error"]

        for form, params in (("csv", {"days": "3660"}), ("jsonl", {"provider": "anthropic", "since": "2026-01-01"})):
            with httpx.stream("GET", url, params={"format": form, **params}, headers=auth, timeout=60) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"  # streamed, no length known up front
                assert response.headers["content-disposition"].endswith(f'.{form}"')
                assert "server" not in response.headers or "Python" not in response.headers["server"]
                body = b"".join(response.iter_bytes())
            options = [f"--{name}={value}" for name, value in params.items()]
            assert main(["--db", str(db_path), "export", "--format", form, *options]) == 0
            assert body.decode() == capsys.readouterr().out, form
            if form == "jsonl":
                lines = [json.loads(line) for line in body.splitlines()]
                assert lines and all(
                    tuple(line) == REQUEST_COLUMNS and line["provider"] == "anthropic" for line in lines
                )
            else:
                assert body.startswith(",".join(REQUEST_COLUMNS).encode() + b"\r\n") and body.count(b"\r\n") == 3001
        by_label = httpx.get(url, params={"format": "jsonl", "key": "alice", "days": "3660"}, headers=auth, timeout=60)
        assert by_label.status_code == 200, by_label.text  # a key by its label, as in the other endpoints
        keys = {json.loads(line)["key_id"] for line in by_label.text.splitlines()}
        assert keys == {"key-5c0ffee1"}
        head = httpx.head(url, headers=auth)
        assert head.status_code == 200 and head.content == b""
        assert TOKEN not in proxy.output()
    finally:
        proxy.stop()
    with saved.open("rb") as file:  # what mitmweb shows and -w keeps: never the export server's secret
        flows = list(io.FlowReader(file).stream())
    exports = [f for f in flows if isinstance(f, http.HTTPFlow) and f.request.path.startswith("/export")]
    assert len(exports) == 4 and all(SECRET_HEADER not in f.request.headers for f in exports)


def test_a_stalled_export_does_not_keep_rows_from_being_written(tmp_path: Path) -> None:
    """A client that stops reading mid-export: the proxy's writer still commits (pages are
    read one short transaction at a time)."""
    path = tmp_path / "big.db"
    generate(path, rows=3 * EXPORT_PAGE, seed=5)
    proxy = Proxy(tmp_path, [], db_path=path)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.sendall(b"GET /stats/export?format=jsonl HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert raw.recv(1024).startswith(b"HTTP/1.1 200")
            time.sleep(1.0)  # the export server is now blocked writing to us, mid-export
            writer = sqlite3.connect(path, timeout=0.5)
            with writer:
                writer.execute(
                    "INSERT INTO requests (timestamp, provider, model) VALUES (?, 'openai', 'm')", [time.time()]
                )
            writer.close()
    finally:
        proxy.stop()


def test_the_export_server_answers_only_the_proxy(tmp_path: Path) -> None:
    server = ExportServer(lambda: str(tmp_path / "none.db"))
    host, port = server.address
    try:
        base = f"http://{host}:{port}/export?format=csv"
        assert httpx.get(base).status_code == 403
        assert httpx.get(base, headers={SECRET_HEADER: "guess"}).status_code == 403
        empty = httpx.get(base, headers={SECRET_HEADER: server.secret})
        assert empty.status_code == 200 and empty.text.strip() == ",".join(REQUEST_COLUMNS)  # no database yet
    finally:
        server.close()
