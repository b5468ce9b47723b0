# One venv, created on demand; every target works on a fresh clone.
# constraints.txt pins every dependency to the versions the suite last passed with,
# so a new release upstream (a typing change, say) cannot turn CI red overnight.
# Refresh it with: .venv/bin/pip freeze --exclude-editable > constraints.txt
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck bench serve emulate clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gemini-failover demo

test: $(STAMP)
	bash .ci/ensure-tools.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

serve: $(STAMP)
	$(BIN)/gemini-failover serve

emulate: $(STAMP)
	$(BIN)/gemini-failover emulate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
