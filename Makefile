# `make demo` and `make test` are the README's two commands; each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INVENTORIES := $(filter-out inventories/lab.py inventories/lab_dynamo.py,$(wildcard inventories/*.py))

.PHONY: demo demo-disagg demo-down plans test lint typecheck unit install setup setup-tests clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The machine's prerequisites (ironserve.lab.host: the one list): Debian packages, a Docker engine.
# Root on Debian; elsewhere it says what to install and exits 2. `ironserve lab doctor` reports.
setup: $(STAMP)
	$(BIN)/ironserve lab setup

setup-tests: $(STAMP)
	$(BIN)/ironserve lab setup --tests

# The main job on the lab: 3 nodes with one lab GPU each, provisioned, the weights of a real
# model fanned out, the real vLLM (CPU build) serving it across the nodes with the layout the
# planner picks (TP 1 x PP 3: vLLM's own --nnodes launch); then a chat completion and the
# endpoint's URL. A lab already up with this shape is reused; `make demo-down` removes it.
DEMO_NODES := 3
DEMO_PROFILE := labgpu

demo: setup
	@if $(BIN)/ironserve lab status --json 2>/dev/null | $(BIN)/python -c 'import json, sys; \
		d = json.load(sys.stdin); \
		sys.exit(0 if d["up"] and not d.get("dynamo") and d["profile"] == "$(DEMO_PROFILE)" \
		and len(d["nodes"]) == $(DEMO_NODES) else 1)'; then \
		echo "== a $(DEMO_NODES) x $(DEMO_PROFILE) lab is up: reusing it"; \
	else \
		$(BIN)/ironserve lab up --nodes $(DEMO_NODES) --profile $(DEMO_PROFILE) || exit $$?; \
	fi
	$(BIN)/pyinfra -y inventories/lab.py deploys/site.py
	@$(BIN)/ironserve lab chat "Say hello."

# NVIDIA Dynamo on the lab, disaggregated: 3 nodes with one lab GPU each (etcd, NATS and the
# frontend with the KV router on the first; a prefill worker on the second, a decode worker on
# the third: Dynamo's mocker behind the real worker command line), the real model's tokenizer;
# then a chat completion through the frontend. A Dynamo lab of this shape is reused; another lab
# is refused (`make demo-down` first). `make demo-down` removes it.
demo-disagg: setup
	@if $(BIN)/ironserve lab status --json 2>/dev/null | $(BIN)/python -c 'import json, sys; \
		d = json.load(sys.stdin); \
		sys.exit(0 if d["up"] and d["dynamo"] and d["profile"] == "$(DEMO_PROFILE)" \
		and len(d["nodes"]) == $(DEMO_NODES) else 1)'; then \
		echo "== a $(DEMO_NODES) x $(DEMO_PROFILE) Dynamo lab is up: reusing it"; \
	else \
		$(BIN)/ironserve lab up --dynamo --nodes $(DEMO_NODES) --profile $(DEMO_PROFILE) || exit $$?; \
	fi
	$(BIN)/pyinfra -y inventories/lab_dynamo.py deploys/site.py
	@$(BIN)/ironserve lab chat "Say hello."

# Removes the lab, then stops the Docker engine `make demo`'s setup started (and no other).
demo-down: $(STAMP)
	$(BIN)/ironserve lab down
	$(BIN)/ironserve lab stop-engine

# Validate and plan every example inventory (no node needed).
plans: $(STAMP)
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

# Every suite, as pytest processes side by side (tools/parallel_pytest.py: the real vLLM beside
# the suites that run no Ray lab; the Ray labs once the real vLLM has ended).
unit: $(STAMP)
	$(BIN)/python tools/parallel_pytest.py -q --durations=15

# Every suite, the lab's included: a lab test never skips (a missing prerequisite fails it).
# Lint and mypy run beside the suites (the labs' first minutes leave the CPUs room); any of the
# three failing fails `make test`. The quick loop without the lab: .venv/bin/pytest -m "not lab"
test: setup-tests
	$(MAKE) --no-print-directory -j3 lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The lab (issue 3). `make test` runs the lab tests too (tests/lab, inside `unit`); these run
# them alone, and bring a lab down (every object labelled ironserve.lab=1).
.PHONY: lab lab-down
lab: $(STAMP)
	$(BIN)/pytest -q -m lab tests/lab

lab-down: $(STAMP)
	$(BIN)/ironserve lab down --all
