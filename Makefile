# Every target does its own set-up, and does nothing twice: the venv and the model store live
# in $(MMSERVE_HOME) (default ~/.cache/mmserve), keyed by pyproject.toml, shared by checkouts.
SHELL := /bin/bash
MMSERVE_HOME ?= $(HOME)/.cache/mmserve
export MMSERVE_MODEL_DIR ?= $(MMSERVE_HOME)/models
PYTHON ?= python3.11
VENV_KEY := $(shell sha1sum pyproject.toml | cut -c1-12)
VENV ?= $(MMSERVE_HOME)/venv-$(VENV_KEY)
PY := $(VENV)/bin/python
PROFILE ?= cpu
# The vLLM text replica's venv (cluster/envs/vllm.toml), keyed by its spec; profiles name the
# stable link $(MMSERVE_HOME)/envs/vllm, which points at the current build.
VLLM_SPEC := cluster/envs/vllm.toml
VLLM_ENV := $(MMSERVE_HOME)/envs/vllm-$(shell sha1sum $(VLLM_SPEC) | cut -c1-12)
export MMSERVE_HOME
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The repo is imported from the checkout, not installed, so one venv serves every clone.
export PYTHONPATH := $(CURDIR)

.PHONY: setup venv models system-deps serve test unit lint clean-venvs setup-vllm

setup: venv models

venv: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
		print('\n'.join(p['dependencies'] + sum(p['optional-dependencies'].values(), [])))" \
		> $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt
	find $(MMSERVE_HOME) -maxdepth 1 -name 'venv-*' ! -path '$(VENV)' -exec rm -rf {} +
	touch $@

setup-vllm: $(VLLM_ENV)/.ready

$(VLLM_ENV)/.ready: $(VLLM_SPEC)
	rm -rf $(VLLM_ENV)
	$(PYTHON) -m venv $(VLLM_ENV)
	$(PYTHON) -c "import tomllib; s = tomllib.load(open('$(VLLM_SPEC)', 'rb')); \
		print('\n'.join(s['requirements'])); open('$(VLLM_ENV)/uninstall.txt', 'w').write( \
		'\n'.join(s.get('uninstall', [])))" > $(VLLM_ENV)/requirements.txt
	$(VLLM_ENV)/bin/pip install --quiet --disable-pip-version-check -r $(VLLM_ENV)/requirements.txt
	$(VLLM_ENV)/bin/pip uninstall --quiet -y -r $(VLLM_ENV)/uninstall.txt
	ln -sfn $(notdir $(VLLM_ENV)) $(MMSERVE_HOME)/envs/vllm
	find $(MMSERVE_HOME)/envs -maxdepth 1 -name 'vllm-*' ! -path '$(VLLM_ENV)' -exec rm -rf {} +
	touch $@

models: venv
	$(PY) -m serve_app.models prepare

system-deps:
	@command -v espeak-ng >/dev/null || ($(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq espeak-ng >/dev/null)

serve: setup $(if $(findstring vllm,$(PROFILE)),setup-vllm)
	$(PY) -m serve_app.launch --profile $(PROFILE)

test: setup system-deps setup-vllm
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup system-deps
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
