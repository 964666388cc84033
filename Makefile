# make demo   - set up (venv, packages, cdk CLI) and run the demo on the local stack
# make test   - set up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
# checkov pins packages that clash with ours: it gets a venv of its own.
CHECKOV_VENV ?= .venv-checkov
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: setup demo test lint local synth bench reliability clean

# The three installs are independent: side by side they take 88 s instead of 117 s here. Only
# they run in parallel (`make clean test` cleans first).
INSTALLS := $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed
setup:
	@$(MAKE) --no-print-directory --jobs=3 --output-sync=target $(INSTALLS)

$(VENV)/.installed: requirements.txt requirements-dev.txt worker_src/requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(PY) -m client demo

# worksteal: a process that runs out of tests takes half of the other's queue (no idle end).
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist worksteal

lint: setup
	$(PY) -m ruff check .

local: setup
	$(PY) -m client local

synth: setup
	. $(VENV)/bin/activate && npx cdk synth --quiet

bench: setup
	$(PY) -m bench.image
	$(PY) -m bench.request_cost
	$(PY) -m bench.latency
	$(PY) -m bench.throughput
	$(PY) -m bench.stats
	$(PY) -m bench.web
	$(PY) -m bench.scaling

reliability: setup
	$(PY) -m bench.reliability

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules cdk.out .cache demo-output .pytest_cache .ruff_cache
