# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   - the offline demo on embedded defaults (simulated provider, no network)
#   make test   - lint, format check, type check and the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint system-deps

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,proxy]'
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
