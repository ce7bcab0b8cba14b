# llm-usage: `make run` starts the proxy, `make test` runs the whole suite.
# Both build .venv/ (Python >= 3.12) and install the pinned requirements when needed.

VENV      := .venv
PY        := $(VENV)/bin/python
# Bind address and port: `make run PORT=9000`, else PROXY_PORT / PROXY_HOST from the
# environment or ./.env (the seed's settings), else 8080 on all interfaces.
dotenv     = $(shell sed -n 's/^[[:space:]]*$(1)[[:space:]]*=[[:space:]]*["'"'"']\{0,1\}\([^"'"'"'[:space:]]*\).*/\1/p' .env 2>/dev/null | tail -n 1)
PORT      ?= $(or $(PROXY_PORT),$(call dotenv,PROXY_PORT),8080)
HOST      ?= $(or $(PROXY_HOST),$(call dotenv,PROXY_HOST),0.0.0.0)
ARGS      ?=
# The HTTPS_PROXY listener (a regular proxy for tools whose base URL cannot be changed):
# on by default, on loopback only (it would otherwise relay CONNECTs for the whole LAN);
# `make run CAPTURE=0` leaves it out.
CAPTURE      ?= 1
CAPTURE_PORT ?= $(or $(PROXY_CAPTURE_PORT),$(call dotenv,PROXY_CAPTURE_PORT),8081)
CAPTURE_HOST ?= 127.0.0.1
CAPTURE_MODE  = $(if $(filter 0,$(CAPTURE)),,--mode regular@$(CAPTURE_HOST):$(CAPTURE_PORT))
# mitmproxy's confdir, where its CA lives: the same for `make run` and `make ca`.
CONFDIR      ?= ~/.mitmproxy
STAMP_RUN := $(VENV)/.installed-runtime
STAMP_TEST:= $(VENV)/.installed-test

.PHONY: run ca test report lint bench bench-stats clients-check venv browser wrk clean

$(PY):
	@interp=$$(sh tools/find-python.sh) || exit 1; \
	echo "Creating $(VENV) with $$interp"; \
	"$$interp" -m venv $(VENV)

# The checkout installs as an editable package (pyproject.toml), with the pinned requirements.
$(STAMP_RUN): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.txt -e .
	@touch $@

$(STAMP_TEST): requirements.txt requirements-test.txt pyproject.toml | $(PY)
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements-test.txt -e .
	@touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)

# The reverse URL is only mitmproxy's required default upstream: every request is routed
# by its first path segment (/openai/..., /anthropic/...), so it is never contacted.
# flow_detail=0: mitmproxy's own per-flow lines would show URLs (a Gemini ?key=);
# termlog_verbosity=warn: no per-connection chatter. The addon's one line per call, its
# start-up summary (proxy, dashboard, database) and every warning are still printed.
run: $(STAMP_RUN)
	@echo "llm-usage: starting on port $(PORT) (dashboard: http://localhost:$(PORT)/dashboard)"
	exec $(VENV)/bin/mitmdump -s addon.py --mode reverse:http://127.0.0.1:9 $(CAPTURE_MODE) \
		--listen-host $(HOST) -p $(PORT) --set confdir=$(CONFDIR) --set flow_detail=0 --set termlog_verbosity=warn $(ARGS)

# Where mitmproxy's CA is (made if absent) and the environment lines for HTTPS_PROXY capture.
ca: $(STAMP_RUN)
	@$(PY) -m llm_usage ca --confdir $(CONFDIR) --host $(CAPTURE_HOST) --port $(CAPTURE_PORT)

# The spend per day in the terminal; any view or filter: make report ARGS="sessions --days 7"
report: $(STAMP_RUN)
	@$(PY) -m llm_usage report $(ARGS)

# Browser tests need Debian's chromium (never a downloaded browser). Installed when we
# can (root with apt-get); otherwise those tests skip and say why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing chromium for the browser tests (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "NOTE: could not install chromium; the browser tests will be skipped"; \
	else \
		echo "NOTE: /usr/bin/chromium is missing and cannot be installed here (needs root + apt-get); the browser tests will be skipped"; \
	fi

# Two workers (pytest-xdist): the end-to-end tests spend most of their time waiting on
# the processes they start. ARGS="-n 0" runs everything in one process.
test: $(STAMP_TEST) browser
	$(PY) -m pytest -q -n 2 $(ARGS)

lint: $(STAMP_TEST)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check llm_usage addon.py
	$(PY) -m mypy llm_usage addon.py

# The benchmark's load comes from wrk: installed when we can (root with apt-get).
wrk:
	@if command -v wrk >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing wrk for the benchmark (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
		|| echo "NOTE: could not install wrk"; \
	fi

bench: $(STAMP_TEST) wrk
	$(PY) bench/bench_proxy.py $(ARGS)

bench-stats: $(STAMP_TEST)
	$(PY) bench/bench_stats.py $(ARGS)

# The real clients (Claude Code, Codex, Cline, opencode, Continue, aider, llm), installed
# from npm and PyPI into a throwaway folder, each running one prompt through the proxy
# against the local mock. Needs the registries, so it is not part of `make test`.
# RECORD=1 writes the request shapes they sent to tests/fixtures/clients/ (make test replays them).
clients-check: $(STAMP_TEST)
	$(PY) -m tests.clients.check $(if $(RECORD),--record) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
