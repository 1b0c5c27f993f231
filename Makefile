# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
# `make test` runs the tests in this many processes (pytest-xdist); 1 runs them in this one.
# Three on the 2-core machine: the end-to-end tests spend much of their time waiting on the
# processes they drive (two workers left a quarter of the CPU idle; 974 s against 860 s).
TEST_WORKERS ?= 3

.PHONY: setup browser demo test lint unit e2e protos lock bench client nemesis clean

# The client distribution (clients/python) first-class beside the server, which depends on it.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e clients/python -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the project and its dev tools

demo: $(STAMP)  ## start an agent and run a real scenario with visible progress
	$(BIN)/python scripts/demo.py

# The console's browser tests drive Debian's headless Chromium; installed here when missing and
# run as root with apt-get, else those tests skip with the reason.
browser:  ## Debian's chromium and chromium-driver, for tests/e2e/test_console.py
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver (the console's browser tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium chromium-driver >/dev/null; \
	else \
	  echo "no chromium/chromedriver, and no root apt-get: the console's browser tests skip"; \
	fi

test: lint browser  ## lint, type-check and run every test
	$(BIN)/python -m pytest $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

e2e: $(STAMP) browser
	$(BIN)/python -m pytest tests/e2e

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e clients/python -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## every benchmark, ratios against baselines of the same run (bench/README.md)
	$(BIN)/python -m bench

# A seeded workload under real faults (partitions, kill -9, database restarts, paused agents),
# then a checker (harness/nemesis.py). NEMESIS_SECONDS (default 120) and NEMESIS_SEED (default:
# drawn and printed); its last line sums it up. A short run is part of `make test`.
nemesis: $(STAMP)  ## the nemesis soak: NEMESIS_SECONDS=600 NEMESIS_SEED=7 make nemesis
	$(BIN)/python -m harness.nemesis

client: $(STAMP)  ## build the Python client's wheel (clients/python) into dist/
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist clients/python
	@ls dist/durable_virt_tasks_client-*.whl

protos: $(STAMP)  ## regenerate the Python code of protos/ (a test checks it is fresh)
	$(BIN)/python scripts/gen_protos.py

# The image installs requirements.lock alone (pip --require-hashes --no-deps): every runtime
# dependency of pyproject.toml, pinned, with the hashes of its files; a test checks it covers
# them. Run after changing `dependencies`; existing pins stay where they still fit, and
# `make lock LOCK_ARGS=--upgrade` takes the newest releases.
lock: $(STAMP)  ## regenerate requirements.lock, the container image's hashed dependencies
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	  --custom-compile-command "make lock" --no-emit-package durable-virt-tasks-client \
	  --quiet --output-file requirements.lock $(LOCK_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info clients/python/build clients/python/src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .demo
