# The two commands a newcomer needs: `make dev` (the broker with its local stack and a demo
# target) and `make test` (the whole suite). Both set up what is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The slowest tests are listed at the end of every run, so a test that grows slow is seen in CI.
PYTEST_ARGS ?= --durations=25
TOOLS := .venv-tools

.PHONY: setup dev test lint infra-check bench clean
setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-worker.txt scripts/system-deps.sh
	scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --ignore-requires-python -r requirements-worker.txt
	touch $@

# checkov pins many packages: its own virtualenv keeps them away from the app's.
$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --upgrade pip
	$(TOOLS)/bin/python -m pip install -q -r requirements-tools.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: setup
	$(PY) -m broker dev

# The Bicep in infra/ is checked by checkov (every finding fixed or skipped with a reason in the
# template) and by tests/infra (pycep-parser). --skip-download: no calls to checkov's cloud.
infra-check: $(TOOLS)/.installed
	$(TOOLS)/bin/checkov --directory infra --framework bicep --compact --quiet --skip-download

test: setup infra-check
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# Figures, not pass/fail: each script prints what it measured (README "Benchmarks").
bench: setup
	$(PY) benchmarks/execute_overhead.py
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/journal.py
	$(PY) benchmarks/masking.py
	$(PY) benchmarks/classify.py
	$(PY) benchmarks/approval_latency.py
	$(PY) benchmarks/mcp_latency.py
	$(PY) benchmarks/durable_event_latency.py
	$(PY) benchmarks/kubernetes_execute.py
	$(PY) benchmarks/faults.py

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .broker
