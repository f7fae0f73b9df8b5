# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench setup clean

# -qq: pip stays silent unless something fails (setuptools prints an information-only notice
# for every editable install whose packages are mapped from other folders, as adapters/ is).
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	$(BIN)/python -m pip install -qq -e ./client  # gateway_client: its own package, for the tests and docs/client.md
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/gateway db upgrade
	$(BIN)/gateway serve --with-simulators --demo

test: $(STAMP)
	$(BIN)/ruff check gateway adapters simulators client tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters simulators client tests bench
	$(BIN)/ruff format --check gateway adapters simulators client tests bench

bench: $(STAMP)
	$(BIN)/python bench/intake.py

clean:
	rm -rf $(VENV) var/*.db var/*.db-*
