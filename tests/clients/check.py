"""``make clients-check``: the real clients, installed from their registries, through the proxy.

Each CLI (npm: Claude Code, Codex, Cline, opencode, Continue; PyPI: aider, llm) is
installed into a throwaway folder, given a throwaway HOME whose settings point it at a
real mitmdump with the addon, in front of the local mock upstream (SSE, JSON, the
Responses API's WebSocket mode), and runs one short non-interactive prompt. The table
says, per client: did it finish and print the mock's answer, how many rows it made
against the calls the mock answered, were the tokens those the mock reported, and the
client name the rows carry.

Not part of ``make test``: it needs the registries. With ``--record`` the request shapes
each client sent (method, path, headers with credentials redacted, WebSocket message
types) are written to ``tests/fixtures/clients/``, which ``make test`` replays
(``tests/test_clients.py``).

    python -m tests.clients.check [--dir DIR] [--only NAME ...] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.harness import OWN_FIXTURES, Proxy, providers_file
from tests.support.mock_upstream import MockUpstream

NPM_PACKAGES = ("@anthropic-ai/claude-code", "@openai/codex", "cline", "opencode-ai", "@continuedev/cli")
PIP_PACKAGES = ("aider-chat", "llm")
OPENAI_KEY = "sk-test-clients-check-0123456789"
ANTHROPIC_KEY = "sk-ant-api03-test-clients-check"
ANSWER = "Hello from the mock upstream!"
LEAKY = ("OPENAI_", "ANTHROPIC_", "CODEX_", "CLAUDE_", "GEMINI_", "OPENROUTER_", "XDG_", "HTTP_PROXY", "HTTPS_PROXY")
UNSHAPED_HEADERS = ("host", "sec-websocket-key", "content-length", "connection", "accept-encoding")
"""Per-connection headers, not the client's own: left out of a recorded shape."""
SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie")
QUIET = {  # no telemetry, update checks or downloads: the run stays local
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "NO_COLOR": "1",
}


@dataclass
class Run:
    """One client against one provider: the files to write into its HOME, the setup
    commands, the prompt, and the client name its rows must carry."""

    name: str
    package: str
    version_argv: list[str]
    argv: list[str]
    named: str
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: list[list[str]] = field(default_factory=list)
    after_setup: Callable[[Path, str], None] | None = None


def _cline_anthropic_base(home: Path, proxy: str) -> None:
    """``cline auth`` refuses a base URL for Anthropic: the provider file is edited."""
    path = home / ".cline/data/settings/providers.json"
    data = json.loads(path.read_text())
    data["providers"]["anthropic"]["settings"]["baseUrl"] = f"{proxy}/anthropic/v1"
    path.write_text(json.dumps(data))


def runs(proxy: str) -> list[Run]:
    """Every client set up as the README says (``{proxy}`` is the proxy's URL)."""
    opencode = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "llmusage/gpt-4o-mini",
        "provider": {
            "llmusage": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "llm-usage",
                "options": {"baseURL": f"{proxy}/openai/v1", "apiKey": OPENAI_KEY},
                "models": {"gpt-4o-mini": {}},
            }
        },
    }
    opencode_anthropic = {
        **opencode,
        "model": "anthropic/claude-sonnet-4-5",
        "provider": {"anthropic": {"options": {"baseURL": f"{proxy}/anthropic/v1", "apiKey": ANTHROPIC_KEY}}},
    }
    continue_yaml = (
        "name: llm-usage\nversion: 1.0.0\nschema: v1\nmodels:\n"
        "  - name: proxy\n    provider: {provider}\n    model: {model}\n"
        "    apiBase: {base}\n    apiKey: {key}\n    roles: [chat]\n"
    )
    codex_toml = (
        'openai_base_url = "{proxy}/openai/v1"\ncheck_for_update_on_startup = false\n[analytics]\nenabled = false\n'
    )
    codex_custom = (
        'model = "gpt-5.5"\nmodel_provider = "llmusage"\ncheck_for_update_on_startup = false\n'
        '[analytics]\nenabled = false\n[model_providers.llmusage]\nname = "llm-usage"\n'
        'base_url = "{proxy}/openai/v1"\nenv_key = "OPENAI_API_KEY"\nwire_api = "responses"\n'
    )
    aider = ["aider", "--message", "say hi", "--yes", "--no-git", "--analytics-disable", "--no-check-update",
             "--no-show-model-warnings", "--no-show-release-notes"]  # fmt: skip
    return [
        Run("claude-anthropic", "@anthropic-ai/claude-code", ["claude", "--version"], ["claude", "-p", "say hi"],
            "Claude Code", env={"ANTHROPIC_BASE_URL": f"{proxy}/anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY}),
        Run("codex-openai", "@openai/codex", ["codex", "--version"],
            ["codex", "exec", "--skip-git-repo-check", "say hi"], "Codex CLI",
            files={".codex/config.toml": codex_toml.format(proxy=proxy)}, env={"CODEX_API_KEY": OPENAI_KEY}),
        Run("codex-custom-responses-sse", "@openai/codex", ["codex", "--version"],
            ["codex", "exec", "--skip-git-repo-check", "say hi"], "Codex CLI",
            files={".codex/config.toml": codex_custom.format(proxy=proxy)}, env={"OPENAI_API_KEY": OPENAI_KEY}),
        Run("cline-openai", "cline", ["cline", "--version"], ["cline", "say hi"], "Vercel AI SDK",
            setup=[["cline", "auth", "-p", "openai", "-k", OPENAI_KEY, "-m", "gpt-4o-mini",
                    "-b", f"{proxy}/openai/v1"]]),
        # a project by base URL (Cline lets one change nothing else) and by a header (Claude Code)
        Run("cline-openai-project", "cline", ["cline", "--version"], ["cline", "say hi"], "Vercel AI SDK",
            setup=[["cline", "auth", "-p", "openai", "-k", OPENAI_KEY, "-m", "gpt-4o-mini",
                    "-b", f"{proxy}/@webshop/openai/v1"]]),
        Run("claude-anthropic-project", "@anthropic-ai/claude-code", ["claude", "--version"],
            ["claude", "-p", "say hi"], "Claude Code",
            env={"ANTHROPIC_BASE_URL": f"{proxy}/anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                 "ANTHROPIC_CUSTOM_HEADERS": "X-LLM-Usage-Project: webshop"}),
        Run("cline-anthropic", "cline", ["cline", "--version"], ["cline", "say hi"], "Vercel AI SDK",
            setup=[["cline", "auth", "-p", "anthropic", "-k", ANTHROPIC_KEY, "-m", "claude-sonnet-4-5"]],
            after_setup=_cline_anthropic_base),
        Run("opencode-openai", "opencode-ai", ["opencode", "--version"], ["opencode", "run", "say hi"], "opencode",
            files={".config/opencode/opencode.json": json.dumps(opencode)}),
        Run("opencode-anthropic", "opencode-ai", ["opencode", "--version"], ["opencode", "run", "say hi"], "opencode",
            files={".config/opencode/opencode.json": json.dumps(opencode_anthropic)}),
        Run("continue-openai", "@continuedev/cli", ["cn", "--version"],
            ["cn", "-p", "say hi", "--config", "{home}/.continue/config.yaml"], "OpenAI JS SDK",
            files={".continue/config.yaml": continue_yaml.format(
                provider="openai", model="gpt-4o-mini", base=f"{proxy}/openai/v1", key=OPENAI_KEY)}),
        Run("continue-anthropic", "@continuedev/cli", ["cn", "--version"],
            ["cn", "-p", "say hi", "--config", "{home}/.continue/config.yaml"], "Node.js",
            files={".continue/config.yaml": continue_yaml.format(
                provider="anthropic", model="claude-sonnet-4-5", base=f"{proxy}/anthropic/v1", key=ANTHROPIC_KEY)}),
        Run("aider-openai", "aider-chat", ["aider", "--version"],
            [*aider, "--model", "openai/gpt-4o-mini", "--openai-api-base", f"{proxy}/openai/v1",
             "--openai-api-key", OPENAI_KEY], "OpenAI Python SDK"),
        Run("aider-anthropic", "aider-chat", ["aider", "--version"],
            [*aider, "--model", "anthropic/claude-sonnet-4-5", "--anthropic-api-key", ANTHROPIC_KEY], "LiteLLM",
            env={"ANTHROPIC_API_BASE": f"{proxy}/anthropic"}),
        Run("llm-openai", "llm", ["llm", "--version"], ["llm", "-m", "gpt-4o-mini", "say hi"], "OpenAI Python SDK",
            env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{proxy}/openai/v1"}),
    ]  # fmt: skip


def https_proxy_runs() -> list[Run]:
    """The clients sent through the HTTPS_PROXY listener by the environment alone (the lines
    ``make ca`` prints, set by ``main``): no base URL anywhere, the providers' real hosts."""
    codex_toml = 'check_for_update_on_startup = false\n[analytics]\nenabled = false\n'
    continue_yaml = (
        "name: llm-usage\nversion: 1.0.0\nschema: v1\nmodels:\n"
        "  - name: proxy\n    provider: openai\n    model: gpt-4o-mini\n    apiKey: {key}\n    roles: [chat]\n"
    )
    opencode = {"$schema": "https://opencode.ai/config.json", "autoupdate": False, "share": "disabled",
                "model": "openai/gpt-4o-mini", "provider": {"openai": {"options": {"apiKey": OPENAI_KEY}}}}
    aider = ["aider", "--message", "say hi", "--yes", "--no-git", "--analytics-disable", "--no-check-update",
             "--no-show-model-warnings", "--no-show-release-notes"]
    return [
        Run("claude-https-proxy", "@anthropic-ai/claude-code", ["claude", "--version"], ["claude", "-p", "say hi"],
            "Claude Code", env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}),
        Run("codex-https-proxy", "@openai/codex", ["codex", "--version"],
            ["codex", "exec", "--skip-git-repo-check", "say hi"], "Codex CLI",
            files={".codex/config.toml": codex_toml}, env={"CODEX_API_KEY": OPENAI_KEY}),
        Run("cline-https-proxy", "cline", ["cline", "--version"], ["cline", "say hi"], "Vercel AI SDK",
            setup=[["cline", "auth", "-p", "openai", "-k", OPENAI_KEY, "-m", "gpt-4o-mini"]]),
        Run("opencode-https-proxy", "opencode-ai", ["opencode", "--version"], ["opencode", "run", "say hi"],
            "opencode", files={".config/opencode/opencode.json": json.dumps(opencode)}),
        Run("continue-https-proxy", "@continuedev/cli", ["cn", "--version"],
            ["cn", "-p", "say hi", "--config", "{home}/.continue/config.yaml"], "OpenAI JS SDK",
            files={".continue/config.yaml": continue_yaml.format(key=OPENAI_KEY)}),
        Run("aider-https-proxy", "aider-chat", ["aider", "--version"],
            [*aider, "--model", "openai/gpt-4o-mini", "--openai-api-key", OPENAI_KEY], "OpenAI Python SDK"),
        Run("llm-https-proxy", "llm", ["llm", "--version"], ["llm", "-m", "gpt-4o-mini", "say hi"],
            "OpenAI Python SDK", env={"OPENAI_API_KEY": OPENAI_KEY}),
    ]  # fmt: skip


def https_proxy_setup(workdir: Path) -> tuple[MockUpstream, Proxy, dict[str, str]]:
    """The mock over TLS posing as api.openai.com and api.anthropic.com (a test CA, and the
    test-only host map in the proxy: nothing reaches the internet), the proxy with both
    listeners, and the environment ``make ca`` prints for its CA."""
    from llm_usage.commands.ca import NO_PROXY, ensure_ca
    from tests.support.harness import ROOT, free_port
    from tests.support.tls import TestCA

    test_ca = TestCA(workdir / "test-ca", "mock")
    mock = MockUpstream().start_in_thread(test_ca.server_context("api.openai.com", "api.anthropic.com"))
    confdir = workdir / "mitmproxy"
    cert, bundle, _ = ensure_ca(confdir)
    port = free_port()
    hostmap = ",".join(f"{host}:443=127.0.0.1:{mock.port}" for host in ("api.openai.com", "api.anthropic.com"))
    proxy = Proxy(workdir, [
        "--mode", f"regular@127.0.0.1:{port}", "-s", str(ROOT / "tests" / "support" / "hostmap.py"),
        "--set", f"hostmap={hostmap}", "--set", f"ssl_verify_upstream_trusted_ca={test_ca.cert_path}",
        "--set", f"confdir={confdir}",
    ])  # fmt: skip
    env = {
        "HTTPS_PROXY": f"http://127.0.0.1:{port}", "https_proxy": f"http://127.0.0.1:{port}",
        "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY, "NODE_EXTRA_CA_CERTS": str(cert),
        "SSL_CERT_FILE": str(bundle), "REQUESTS_CA_BUNDLE": str(bundle), "CODEX_CA_CERTIFICATE": str(bundle),
    }  # fmt: skip
    return mock, proxy, env


# ------------------------------------------------------------------ installing


def install(directory: Path) -> dict[str, str]:
    """The CLIs, newest from the registries (kept in ``directory`` between runs): PATH entries."""
    npm = directory / "npm"
    npm.mkdir(parents=True, exist_ok=True)
    print(f"installing {', '.join(NPM_PACKAGES)} (npm) and {', '.join(PIP_PACKAGES)} (PyPI) into {directory}")
    subprocess.run(
        ["npm", "install", "--prefix", str(npm), "--no-audit", "--no-fund", "--loglevel=error",
         *(f"{p}@latest" for p in NPM_PACKAGES)],
        check=True,
    )  # fmt: skip
    for package in PIP_PACKAGES:  # a venv each: aider pins its dependencies exactly
        venv = directory / f"venv-{package}"
        if not (venv / "bin" / "python").exists():
            subprocess.run([_client_python(), "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U"]
        if subprocess.run([*pip, package]).returncode:
            print(f"NOTE: {package} could not be installed; its runs will fail")
    return search_path(directory)


def search_path(directory: Path) -> dict[str, str]:
    """PATH with the installed clients first."""
    bins = [directory / "npm" / "node_modules" / ".bin", *(directory / f"venv-{p}" / "bin" for p in PIP_PACKAGES)]
    return {"PATH": os.pathsep.join([*map(str, bins), os.environ["PATH"]])}


def _client_python() -> str:
    """A Python the PyPI clients support: aider-chat 0.86 requires < 3.13."""
    for name in ("python3.12", "python3.11", "python3.10"):
        found = shutil.which(name)  # a pyenv shim may exist for a version that is not active
        if found and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0:
            return found
    return sys.executable


# ------------------------------------------------------------------ running


@dataclass
class Result:
    run: Run
    version: str = "?"
    completed: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    billed: list[list[int]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def tokens_right(self) -> bool:
        calls = [r for r in self.rows if r["usage_status"] != "none"]
        counted = sorted([r["input_tokens"], r["output_tokens"]] for r in calls)
        return bool(calls) and counted == sorted(self.billed) and all(r["usage_status"] == "complete" for r in calls)

    @property
    def sessions(self) -> str:
        """The sessions and key fingerprints its calls were attributed to."""
        calls = [r for r in self.rows if r["usage_status"] != "none"]
        sessions = {r["session_id"] for r in calls if r.get("session_id")}
        keys = {r["key_id"] for r in calls if r.get("key_id")}
        missing = sum(1 for r in calls if not r.get("session_id"))
        projects = sorted({r["project"] for r in calls if r.get("project")})
        shown = f"{len(sessions)} session(s)" + (f", {missing} call(s) without" if sessions and missing else "")
        return (shown if sessions else "none") + f"; {len(keys)} key(s)" + "".join(f"; @{p}" for p in projects)

    @property
    def names(self) -> str:
        return ", ".join(sorted({str(r["client"]) for r in self.rows if r["usage_status"] != "none"})) or "-"


def _kill_leftovers(home: Path) -> None:
    """Background processes a client left running with this HOME (Cline's hub daemon)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if f"HOME={home}".encode() in environ.split(b"\0"):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


def run_one(run: Run, base_env: dict[str, str], directory: Path, proxy: Proxy, mock: MockUpstream) -> Result:
    home = directory / "homes" / run.name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    for relative, content in run.files.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(content)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY)}  # the person's own settings
    env = {**inherited, **base_env, **QUIET, **run.env, "HOME": str(home), "LLM_USER_PATH": str(home / "llm")}
    result = Result(run)
    log = directory / "logs" / f"{run.name}.log"
    log.parent.mkdir(exist_ok=True)
    try:
        version = subprocess.run(run.version_argv, env=env, capture_output=True, text=True, timeout=60, cwd=home)
        result.version = (version.stdout.strip() or version.stderr.strip()).splitlines()[0][:40]
        for command in run.setup:
            subprocess.run(command, env=env, capture_output=True, timeout=120, cwd=home, check=True)
        if run.after_setup is not None:
            run.after_setup(home, proxy.url)
        first_id, first_request = proxy.max_id(), len(mock.requests)
        argv = [a.replace("{home}", str(home)) for a in run.argv]
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=240, cwd=home, stdin=subprocess.DEVNULL
        )
        log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n")
        result.completed = done.returncode == 0 and ANSWER in done.stdout
        if not result.completed:
            result.note = f"exit {done.returncode}; see {log}"
    except (subprocess.SubprocessError, OSError, IndexError, KeyError, ValueError) as exc:
        result.note = f"{type(exc).__name__}: {exc}"[:200]
        first_id, first_request = proxy.max_id(), len(mock.requests)
    finally:
        _kill_leftovers(home)
    time.sleep(1.0)  # the writer's batch window, and a socket's last row after the client exits
    result.requests = mock.requests[first_request:]
    result.billed = [bill for request in result.requests for bill in request.get("billed", [])]
    # a row per HTTP request, and per turn on a socket
    expected = sum(len(r["billed"]) if "frames" in r else 1 for r in result.requests)
    result.rows = proxy.rows_after(first_id, expected, timeout=10)
    return result


def record(result: Result) -> None:
    """The request shapes the client sent, credentials redacted, for ``make test`` to replay."""
    slug = "anthropic" if "anthropic" in result.run.name else "openai"  # the mock sees upstream paths
    shapes = []
    for request in result.requests:
        headers = {
            name: "<redacted>" if name in SECRET_HEADERS else value
            for name, value in request["headers"].items()
            if name not in UNSHAPED_HEADERS
        }
        body = json.loads(request["body"]) if request["body"].startswith("{") else {}
        shape: dict[str, Any] = {
            "method": request["method"],
            "path": f"/{slug}{request['path']}",
            "query": request["query"],
            "headers": headers,
            "model": body.get("model"),
            "stream": body.get("stream"),
        }
        if "messages" in request:
            shape["ws_frames"] = request["messages"]
        shapes.append(shape)
    fixture = {"client": result.run.named, "version": result.version, "requests": shapes}
    path = OWN_FIXTURES / "clients" / f"{result.run.name}.json"
    path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")


def table(results: list[Result]) -> str:
    head = ("client", "version", "completed", "rows", "tokens right", "client name", "sessions; keys; project", "note")
    lines = [head]
    for r in results:
        calls = len(r.billed)
        counted = sum(1 for row in r.rows if row["usage_status"] != "none")
        rows = f"{counted}/{calls}" + (f" (+{len(r.rows) - counted} no usage)" if len(r.rows) > counted else "")
        named = r.names + ("" if r.names == r.run.named else f" (want {r.run.named})")
        lines.append((r.run.name, r.version, "yes" if r.completed else "NO", rows,
                      "yes" if r.tokens_right else "NO", named, r.sessions, r.note))  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "llm-usage-clients")
    parser.add_argument("--only", nargs="*", default=[], help="run names (default: all)")
    parser.add_argument("--record", action="store_true", help="write tests/fixtures/clients/<run>.json")
    parser.add_argument("--no-install", action="store_true", help="use what --dir already has")
    parser.add_argument("--https-proxy", action="store_true",
                        help="through the HTTPS_PROXY listener, by the environment alone (no base URLs)")
    args = parser.parse_args()
    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if args.no_install:
        base_env = search_path(directory)
    else:
        base_env = install(directory)
    workdir = Path(tempfile.mkdtemp(prefix="proxy-", dir=directory))
    if args.https_proxy:
        mock, proxy, environment = https_proxy_setup(workdir)
        base_env, chosen = {**base_env, **environment}, https_proxy_runs()
    else:
        mock = MockUpstream().start_in_thread()
        proxy = Proxy(workdir, ["--set", f"llm_usage_providers={providers_file(workdir, mock.url)}"])
        chosen = runs(proxy.url)
    results = []
    try:
        for run in chosen:
            if args.only and run.name not in args.only:
                continue
            print(f"running {run.name} ...", flush=True)
            result = run_one(run, base_env, directory, proxy, mock)
            results.append(result)
            if args.record and result.completed:
                record(result)
    finally:
        proxy.stop()
        mock.stop()
    print()
    print(table(results))
    ok = all(r.completed and r.tokens_right and r.names == r.run.named for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
