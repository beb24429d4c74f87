# Two commands set everything up on a fresh machine:
#   make train   # creates .venv, installs maskcls, trains the default run on synthetic data
#   make test    # creates .venv, installs maskcls with test tools, runs the test suite
# Both are idempotent: the install step reruns only when pyproject.toml changes.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= dev,sweep,export,trackers
ARGS ?=

.PHONY: install train test test-all lint synth clean docs-figures

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

train: install
	$(PY) train.py $(ARGS)

# One pytest-xdist worker per core (TEST_WORKERS=0 runs in one process). pytest exits 5 when it
# collects no test: treat that as a failure, loudly.
TEST_WORKERS ?= auto
test: install
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist worksteal $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$rc

test-all: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(ARGS)

lint: install
	$(PY) -m ruff check .

# Every picture in docs/, made again on today's code (about 15 min on 2 CPU cores).
docs-figures: install
	$(PY) -m benchmarks.docs_figures $(ARGS)

synth: install
	$(PY) -m maskcls.synth --out data/synthetic

clean:
	rm -rf outputs .pytest_cache .ruff_cache
