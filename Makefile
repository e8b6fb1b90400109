# Set-up and checks for rs_embed. `make demo` and `make test` do everything on a fresh
# machine: a .venv, the pinned CPU torch when this machine has it, the package, and for
# the tests every extra, the reference model libraries and a headless Chromium.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip
# The CPU build of torch: a bare `torch` requirement pulls a multi-GB CUDA build.
TORCH_CPU       := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
# The model extras need torchvision, which only imports beside this torch release.
TORCH_MODELS    := torch==2.14.1 torchvision==0.29.1
# Reference implementations the parity tests compare against (loaded file by file).
# olmoearth-pretrain (training package, pins torch<2.10): only its model code is loaded.
MODEL_REFS      := terratorch==1.2.13 rshf==0.2.2 olmoearth-pretrain==0.1.2
MODEL_REF_DEPS  := transformers==5.18.0
# claymodel's wheel imports a `src` package it does not ship (and would put model.py,
# utils.py, ... at the top of site-packages): its files are unpacked as that package.
CLAY_REF        := claymodel==1.5.0
REFS            := $(VENV)/refs
CHROMIUM        := /usr/bin/chromium

.PHONY: demo test venv dev browser docs docs-serve bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# Core install: keep a torch that is already there, else the CPU build (local disk
# first, then PyTorch's CPU index), then rs_embed itself.
$(VENV)/.stamp-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(PIP) install -q "$(TORCH_CPU)" \
	  || $(PIP) install -q torch --index-url $(TORCH_CPU_INDEX)
	$(PIP) install -q -e .
	touch $@

# Everything the tests need: all extras (the STAC API server rustac is in dev), the model
# reference code, Chromium.
$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q $(TORCH_MODELS) \
	  || $(PIP) install -q torch torchvision --index-url $(TORCH_CPU_INDEX)
	$(PIP) install -q -e ".[dev,gee,notebook,models,analysis,ann,docs,stac,parquet,zarr]"
	$(PIP) install -q --no-deps $(MODEL_REFS)
	$(PIP) install -q $(MODEL_REF_DEPS)
	rm -rf $(REFS)/claymodel && mkdir -p $(REFS)/wheels $(REFS)/claymodel
	$(PIP) download -q --no-deps $(CLAY_REF) -d $(REFS)/wheels
	$(BIN)/python -m zipfile -e $(REFS)/wheels/claymodel-1.5.0-py3-none-any.whl $(REFS)/claymodel/src
	$(MAKE) browser
	touch $(VENV)/.stamp-core $@

# Headless Chromium for the notebook-layer browser test (Debian's package).
browser:
	@test -x $(CHROMIUM) || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@test -x $(CHROMIUM) && echo "chromium: $$($(CHROMIUM) --version 2>/dev/null)"

venv: $(VENV)/.stamp-core
dev: $(VENV)/.stamp-dev

demo: $(VENV)/.stamp-core
	$(BIN)/python scripts/demo.py --out demo_out

test: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --quiet -f docs/mkdocs.yml --site-dir ../build/site
	@! grep -rlE '<(script|link)[^>]+(src|href)="(https?:)?//' build/site --include=*.html \
	  || { echo "the docs load scripts or styles from the network (they must work offline)"; exit 1; }

docs: $(VENV)/.stamp-dev
	$(BIN)/mkdocs build --strict -f docs/mkdocs.yml --site-dir ../build/site

# The documentation site with live reload on 127.0.0.1:8000 (API reference from docstrings).
docs-serve: $(VENV)/.stamp-dev
	$(BIN)/mkdocs serve -f docs/mkdocs.yml -a 127.0.0.1:8000

bench: $(VENV)/.stamp-core
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/export_pipeline.py
	$(BIN)/python benchmarks/similarity_search.py
	$(BIN)/python benchmarks/notebook_map.py

clean:
	rm -rf $(VENV) build demo_out .pytest_cache
