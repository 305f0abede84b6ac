# Every target creates .venv on first use, so a fresh clone needs only Python 3.11+, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test docs tck bench bench-real-model lint typecheck format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[cli,prices]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py
	$(BIN)/python examples/flow_demo.py
	$(BIN)/penguiflow trace list --limit 5

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

test: lint typecheck docs
	$(BIN)/pytest

# The documentation site (mkdocs.yml, docs/): strict, so a broken link, a missing page or a
# docstring mkdocstrings cannot render fails the build.
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The A2A conformance kit (a2a-tck; kept outside the repo, see tools/tck/run.py) against
# our JSON-RPC server; fails on a failure not listed in tools/tck/expected_failures.txt.
tck: $(VENV)/.installed-dev
	$(BIN)/python tools/tck/run.py

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

# ReactPlanner against a real small model (llama-server + a GGUF, cached outside the
# repo; not part of CI). Options: make bench-real-model ARGS="--model 0.5b --client native"
bench-real-model: $(VENV)/.installed-dev
	$(BIN)/python bench/real_model/run.py $(ARGS)

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench examples tools
	$(BIN)/ruff check --fix src tests bench examples tools

clean:
	rm -rf $(VENV) .venv-tck .mypy_cache .pytest_cache .ruff_cache
