# codemill: every target bootstraps what it needs on a fresh Debian machine, as root or not.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.codemill-installed
MODEL_STAMP := $(VENV)/.codemill-model
# torch is pinned and installed by pip, never resolved by uv: a bare `torch` from the
# public index is a multi-GB CUDA build; 2.13.0 has a CPU build on our machines.
TORCH := torch==2.13.0
# Root needs no sudo; anyone else uses sudo when it exists (and apt-get is skipped when not).
SUDO := $(shell [ "$$(id -u)" = 0 ] || { command -v sudo >/dev/null && echo sudo; })
APT_PKGS := git bubblewrap util-linux chromium chromium-driver postgresql

.PHONY: help setup system test lint demo bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## / - /'

system:  ## install system packages (git, bubblewrap, chromium for the report test) with apt-get when missing
	@missing=""; for p in git bwrap setpriv chromium chromedriver; do command -v $$p >/dev/null || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then \
	    echo "installing system packages: $(APT_PKGS)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null; \
	  else echo "warning: git/bubblewrap missing and apt-get not usable; sandboxed steps will fail" >&2; fi; \
	fi

$(BIN)/python:
	@$(PY) -m venv $(VENV) 2>/dev/null || { $(SUDO) apt-get install -y -qq python3-venv >/dev/null && $(PY) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev,ray,report]'
	@touch $(STAMP)

$(MODEL_STAMP): $(STAMP)
	@echo "installing the local model and training stack (torch, transformers, gguf, peft, trl)"
	@$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	@$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev,ray,model,train,report,interop,postgres]'
	@touch $(MODEL_STAMP)

setup: system $(STAMP) $(MODEL_STAMP)  ## create .venv and install codemill, its dev tools and the model stack

lint: setup  ## ruff, mypy (the packages in pyproject's [tool.mypy] files) and the layer contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Three pytest workers on 2 cores, a test file per worker at a time (module fixtures build
# once): a third of a test's time is spent waiting on sandboxes, subprocesses and servers,
# so a third worker fills the cores while two of them wait.
test: lint  ## the whole test suite (under 15 minutes on 2 cores)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --durations=15 tests

demo: setup  ## the main job on its embedded default
	$(BIN)/codemill demo

bench: setup  ## benchmarks that print figures
	$(BIN)/python bench/run_all.py

clean:  ## remove the virtualenv and the local ledger
	rm -rf $(VENV) .codemill .pytest_cache .ruff_cache
