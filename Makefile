# Set-up and checks for rs_embed. `make demo` and `make test` do everything on a
# fresh machine: a .venv, the pinned CPU torch when this machine has it, the package.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_CPU := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: demo test venv dev docs bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# Core install: torch CPU first (local disk if present, else the CPU index), then us.
$(VENV)/.stamp-core: pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH_CPU)" || $(PIP) install -q torch --index-url $(TORCH_CPU_INDEX)
	$(PIP) install -q -e .
	touch $@

# Everything the tests need: extras, docs builder.
$(VENV)/.stamp-dev: $(VENV)/.stamp-core
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.stamp-core
dev: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-core
	$(BIN)/python scripts/demo.py --out demo_out

test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml --site-dir ../build/site

docs: $(VENV)/.stamp-dev
	$(BIN)/mkdocs build --strict -f docs/mkdocs.yml --site-dir ../build/site

bench: $(VENV)/.stamp-core
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build demo_out .pytest_cache
