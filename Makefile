# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   - the offline demo on embedded defaults (simulated provider, no network)
#   make test   - lint, format check, type check and the whole test suite
# Installs use constraints.txt: the exact versions the suite was last green on.
# Two more jobs see drift the day it happens, each in its own venv (.venv stays untouched):
#   make test-newest  - the suite on the newest versions pyproject.toml's ranges allow
#   make test-oldest  - the suite on the ranges' lower ends (requirements.oldest.txt)
#   make lock         - after a green test-newest: write its versions to constraints.txt
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
EXTRAS := .[dev,proxy]

.PHONY: demo test test-fast lint system-deps test-newest test-oldest lock

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '$(EXTRAS)'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlm-router demo

system-deps:
	bash .ci/system-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

test-fast: $(STAMP) lint
	$(VENV)/bin/pytest -q -m "not slow and not server"

# A fresh venv each run, so "newest" means the newest on the index today. Each job writes the
# versions it ran on to <venv>/versions.txt for the record.
define range_end_job
	rm -rf $(1)
	python3 -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet $(2) -e '$(EXTRAS)'
	$(1)/bin/pip freeze --all --exclude-editable | grep -v '^setuptools==' > $(1)/versions.txt
	grep -iE '^(litellm|openai|opentelemetry-sdk|pydantic|httpx|aiohttp|numpy)==' $(1)/versions.txt
	$(1)/bin/pytest -q -p no:cacheprovider
endef

test-newest: system-deps
	$(call range_end_job,.venv-newest,)

test-oldest: system-deps
	$(call range_end_job,.venv-oldest,-c requirements.oldest.txt)

lock:
	test -f .venv-newest/versions.txt || { echo "lock: run make test-newest first" >&2; exit 1; }
	{ grep '^#' $(CONSTRAINTS); cat .venv-newest/versions.txt; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
