# `make demo` and `make test` are the README's two commands; each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INVENTORIES := $(filter-out inventories/lab.py,$(wildcard inventories/*.py))

.PHONY: demo test lint typecheck unit install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job until the lab exists: validate and plan every example inventory.
demo: $(STAMP)
	@for inv in $(INVENTORIES); do \
		echo "== $$inv"; \
		$(BIN)/ironserve validate -i $$inv || exit $$?; \
		$(BIN)/ironserve plan -i $$inv || exit $$?; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The lab (issue 3). `make test` runs the lab tests too (tests/lab, inside `unit`); these run
# them alone, and bring a lab down (every object labelled ironserve.lab=1).
.PHONY: lab lab-down
lab: $(STAMP)
	$(BIN)/pytest -q -m lab tests/lab

lab-down: $(STAMP)
	$(BIN)/ironserve lab down --all
