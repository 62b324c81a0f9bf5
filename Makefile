# The two commands a new user runs: `make dev` and `make test`. Everything else is here too.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy
# The platform's certificate store (where a TLS-inspecting proxy's CA is installed), not uv's own.
export UV_SYSTEM_CERTS := 1
export CHECKPOINT_DISABLE := 1

# Coverage floors (path=percent) that `make test` enforces.
COVERAGE_FLOORS := shared=90 functions/ingest=90 functions/sink=90 functions/snapshot=90 functions/lifecycle=90 functions/anomaly=90 telemetry_client=90

.PHONY: setup setup-js js js-build dev check check-ruff check-mypy check-pytest test test-pytest lint gates \
	telemetry-check chaos bench bundles dist docs clean

# One mypy cache for every mypy run (shared/, the CLI, each function): warm after the first.
MYPY := $(BIN)/mypy --cache-dir $(CURDIR)/.mypy_cache
# pytest's workers (pytest-xdist): two per core, as most integration tests wait on services and
# subprocesses more than they compute. Each worker starts its own local services, and a
# module's tests stay on one worker (their module-scoped fixtures are set up once).
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

CHECKOV := $(TOOLS)/checkov/bin/checkov

## setup: the virtual environment from uv.lock, checkov's own tool environment, and what the
## machine lacks (idempotent)
setup: $(STAMP) $(CHECKOV)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock scripts/setup-system.sh | $(UV)
	bash scripts/setup-system.sh
	$(UV) sync --frozen --extra cli --extra local --python $(PYTHON) --quiet
	touch $(STAMP)

# Checkov pins its own fork of python-hcl2, which installs the same `hcl2` module as the
# python-hcl2 the tests use: it gets an environment of its own, locked in tools/checkov.lock.
$(CHECKOV): tools/checkov.lock | $(UV)
	$(UV) venv --quiet --allow-existing $(TOOLS)/checkov --python $(PYTHON)
	$(UV) pip sync --quiet --python $(TOOLS)/checkov/bin/python tools/checkov.lock
	touch $(CHECKOV)

## setup-js: the JS client's tools from package-lock.json, and Chromium for the browser tests
JS := clients/js
JS_STAMP := $(JS)/node_modules/.setup-stamp

setup-js: $(JS_STAMP)

$(JS_STAMP): $(JS)/package-lock.json scripts/setup-system.sh
	bash scripts/setup-system.sh chromium node
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

## js-build: build the JS client (clients/js/dist: the browser tests and chaos load it)
js-build: setup-js
	cd $(JS) && npm run -s build

## js: type-check, unit-test and size the JS client
js: js-build
	cd $(JS) && npm run -s typecheck && npm test --silent && node scripts/size.mjs

## dev: run the whole pipeline locally (Ctrl-C stops everything)
dev: setup
	$(BIN)/telemetry dev $(DEV_ARGS)

## check: the fast loop after every change, with no service and no browser: ruff, mypy and
## the unit and contract tests, side by side
check: setup
	@$(MAKE) --no-print-directory -j3 --output-sync=target check-ruff check-mypy check-pytest

check-ruff: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-mypy: setup
	$(MYPY) shared telemetry_cli telemetry_client benchmarks
	@set -e; for dir in functions/*/; do [ -f "$$dir/main.py" ] || continue; \
		echo "mypy $$dir"; (cd "$$dir" && MYPYPATH=$(CURDIR) $(CURDIR)/$(MYPY) --config-file $(CURDIR)/pyproject.toml .); done

check-pytest: setup
	$(BIN)/pytest -q -p no:cacheprovider $(XDIST) tests/unit tests/contract

## lint: ruff, ruff format, mypy (strict on shared/)
lint: check-ruff check-mypy

## telemetry-check: the roadmap's gate: registry lint, docs drift, schema contract tests, static analysis
telemetry-check: setup
	$(BIN)/telemetry registry lint
	$(BIN)/telemetry registry docs --check
	$(BIN)/telemetry registry ts --check
	$(BIN)/telemetry registry openapi --check
	$(BIN)/telemetry metrics lint
	$(BIN)/telemetry metrics docs --check
	$(BIN)/telemetry metrics dashboards --check
	$(BIN)/telemetry cli-docs --check
	$(BIN)/pytest -q -p no:cacheprovider tests/contract
	$(BIN)/ruff check shared
	$(MYPY) shared

## gates: the registry and catalog gates (lint, generated docs not drifted)
gates: setup
	$(BIN)/telemetry registry lint
	$(BIN)/telemetry registry docs --check
	$(BIN)/telemetry registry ts --check
	$(BIN)/telemetry registry openapi --check
	$(BIN)/telemetry metrics lint
	$(BIN)/telemetry metrics docs --check
	$(BIN)/telemetry metrics dashboards --check
	$(BIN)/telemetry cli-docs --check

## test: lint, the JS checks, the gates and the whole suite over every core, side by side, with
## coverage floors (PYTEST_ARGS narrows pytest, e.g. Cloud Build's -m 'not needs_terraform';
## CI never sets it)
test: setup
	@$(MAKE) --no-print-directory -j4 --output-sync=line lint js gates test-pytest

test-pytest: setup js-build
	$(BIN)/pytest --cov --cov-report=term --cov-report=xml -p no:cacheprovider $(XDIST) --durations=20 $(PYTEST_ARGS)
	@set -e; for floor in $(COVERAGE_FLOORS); do \
		path=$${floor%%=*}; min=$${floor##*=}; \
		$(BIN)/coverage report --include="$$path/*" --fail-under=$$min >/dev/null \
			|| { echo "coverage of $$path/ is under $$min %"; $(BIN)/coverage report --include="$$path/*"; exit 1; }; \
		echo "coverage of $$path/ is at least $$min %"; \
	done

## chaos: 100,000 events through every client while faults strike; a ledger reconciled with every tier
## (CHAOS_ARGS="--seed N" replays a run; `make test` runs a short version)
chaos: setup js
	$(BIN)/telemetry chaos $(CHAOS_ARGS)

## bench: every benchmark in benchmarks/ (each starts the services it needs)
bench: setup setup-js
	@set -e; for script in benchmarks/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script; done
	cd $(JS) && npm run -s size

## bundles: one reproducible zip per function (build/bundles/) and terraform/bundles.auto.tfvars.json
bundles: setup
	$(BIN)/python scripts/build_bundles.py

## dist: the Python client's wheel (dist/telemetry_client-*.whl), installable alone
dist: setup
	$(BIN)/python scripts/build_client.py --out dist

## docs: regenerate the generated docs (registry reference, metrics catalog, Grafana dashboards,
## the command reference)
docs: setup
	$(BIN)/telemetry registry docs
	$(BIN)/telemetry registry ts
	$(BIN)/telemetry registry openapi
	$(BIN)/telemetry metrics docs
	$(BIN)/telemetry metrics dashboards
	$(BIN)/telemetry cli-docs

clean:
	rm -rf $(VENV) $(TOOLS) $(JS)/node_modules $(JS)/dist .telemetry .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml
