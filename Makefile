# Every target that needs the virtualenv builds it first, so `make test` works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench docs clean

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
	$(PY) bench/transfer_1gib.py
	$(PY) bench/faults.py

docs: $(STAMP)
	$(PY) -m pdoc golemsync -o docs/api --docformat restructuredtext
	@echo "API reference written to docs/api/index.html"

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
