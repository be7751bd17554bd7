# Every target that needs the virtualenv builds it first, so `make test` works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench bench-compare docs clean

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check golemsync tests examples bench
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) examples/hashcrack.py

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/spawn.py
	$(PY) bench/transfer_1gib.py
	$(PY) bench/faults.py

docs: $(STAMP)
	$(PY) -m pdoc golemsync -o docs/api --docformat restructuredtext
	@echo "API reference written to docs/api/index.html"

clean:
	rm -rf $(VENV) $(COMPARE_VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# golemsync vs yapapi 0.13.1 vs a bare requests client, each on fresh devnets (bench/compare.py).
# yapapi lives in its own virtualenv so it never touches the project's. QUICK=1: N=50, 4 providers.
COMPARE_VENV := bench/.venv-compare
COMPARE_STAMP := $(COMPARE_VENV)/.installed

$(COMPARE_STAMP):
	$(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/python -m pip install -q 'yapapi==0.13.1'
	touch $(COMPARE_STAMP)

bench-compare: $(STAMP) $(COMPARE_STAMP)
	$(PY) bench/compare.py --yapapi-python $(COMPARE_VENV)/bin/python $(if $(QUICK),--quick,)
