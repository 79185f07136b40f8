# Two entry points: `make demo` and `make test` (`make notebooks` re-executes and rewrites notebooks/*.ipynb). Both create .venv if needed and install the project
# with its dev extras; the install is skipped when pyproject.toml has not changed since the last one.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint install clean notebooks bytecode

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py analyzer/pcapmtu/ingest/_native.c | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

# What `pip install` of a wheel does: every module compiled once, so that a command does not compile ~50 of them
# again on every start where PYTHONDONTWRITEBYTECODE is set (as on this machine: ~0.15 s a command). Only the
# modules changed since are compiled again.
bytecode: | $(BIN)/python
	$(BIN)/python -m compileall -q analyzer

install: $(STAMP)

DEMO := sample_pcaps/blackhole_tls12

demo: $(STAMP) bytecode
	$(BIN)/pcapmtu analyze $(DEMO)/host.pcap $(DEMO)/container.pcap --out report --force || test $$? -eq 1
	@echo
	@echo "demo report: $(CURDIR)/report/report.html"

lint: $(STAMP)
	$(BIN)/ruff check analyzer tests benchmarks sample_pcaps notebooks/execute.py
	$(BIN)/ruff format --check analyzer tests benchmarks sample_pcaps notebooks/execute.py

# The notebooks are stored executed, with outputs; tests/test_notebooks.py fails when they no longer match a fresh
# run. After a change they show: `make notebooks`, review the diff, commit. (notebooks/execute.py --check compares.)
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute.py

test: lint
	$(BIN)/python -m pytest -q

# The inner loop: lint and every test that needs no corpus file, tshark, lab capture set, hypothesis run or
# browser, nor starts a service (dockerd, Dask), with each sweep over the lab scenarios run for the demo incident only (markers set in
# tests/conftest.py), on all cores. CI runs `make test`, the whole suite.
check: lint
	$(BIN)/python -m pytest -q -n auto -m "not corpus and not oracle and not lab and not fuzz and not browser and not service"

clean:
	rm -rf $(VENV) build *.egg-info analyzer/*.egg-info analyzer/pcapmtu/ingest/*.so
