# Every target does its own set-up, and does nothing twice: the venv and the model store live
# in $(MMSERVE_HOME) (default ~/.cache/mmserve), keyed by pyproject.toml, shared by checkouts.
SHELL := /bin/bash
MMSERVE_HOME ?= $(HOME)/.cache/mmserve
export MMSERVE_HOME
export MMSERVE_MODEL_DIR ?= $(MMSERVE_HOME)/models
PYTHON ?= python3.11
# Keyed by the dependency lists alone, so editing pytest or ruff settings rebuilds nothing.
DEPENDENCIES = $(PYTHON) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	print('\n'.join(p['dependencies'] + sum(p['optional-dependencies'].values(), [])))"
VENV_KEY := $(shell $(DEPENDENCIES) | sha1sum | cut -c1-12)
VENV ?= $(MMSERVE_HOME)/venv-main-$(VENV_KEY)
PY := $(VENV)/bin/python
# The unit tier's light venv: pyproject's `unit` group alone (no torch, Ray or transformers),
# keyed by that list as the main venv is keyed by all of them.
UNIT_DEPENDENCIES = $(PYTHON) -c "import tomllib; \
	print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['unit']))"
UNIT_VENV_KEY := $(shell $(UNIT_DEPENDENCIES) | sha1sum | cut -c1-12)
UNIT_VENV ?= $(MMSERVE_HOME)/venv-unit-$(UNIT_VENV_KEY)
PROFILE ?= cpu
# haproxy (Ray's high-throughput HAProxy ingress, the default of a local head) or proxy
# (Serve's Python proxy actor)
INGRESS ?=
# `make serve` passes its environment to the ingress: MMSERVE_API_KEYS (comma-separated keys)
# and MMSERVE_TENANTS_FILE (the tenants file: docs/security.md), e.g.
#   MMSERVE_TENANTS_FILE=~/.mmserve-secrets/tenants.yaml make serve PROFILE=gpu
# More flags for `make serve`, e.g. SERVE_ARGS="--http-port 8001 --ray-port 6380 --temp-dir DIR"
SERVE_ARGS ?=
PYTEST_ARGS ?=
# Replica groups with their own Python env (cluster/envs/NAME.toml); built once, cached.
GROUP_ENVS ?= audio
CLUSTER_PROFILE ?= mixed-local
BENCH_ARGS ?= --workload mixed --concurrency 8 --duration 30s --warmup 10s --slo ttft=2s,e2e=30s
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The repo is imported from the checkout, not installed, so one venv serves every clone.
export PYTHONPATH := $(CURDIR)

.PHONY: setup venv venv-python models system-deps serve test unit lint bench group-envs \
	cluster-up cluster-deploy cluster-status cluster-down setup-vllm

setup: venv models

venv: $(VENV)/.ready

# Keyed by the hash of pyproject.toml, so no file prerequisite: a fresh clone's newer mtime
# must not rebuild a venv whose key already matches.
$(VENV)/.ready:
	rm -f $@  # first, so an interrupted rebuild never looks complete
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(DEPENDENCIES) > $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(VENV)/requirements.txt 2>&1 \
		| grep -v '^WARNING: Location' ; test $${PIPESTATUS[0]} -eq 0
	find $(MMSERVE_HOME) -maxdepth 1 -name 'venv-main-*' ! -path '$(VENV)' -exec rm -rf {} +
	touch $@

$(UNIT_VENV)/.ready:
	rm -f $@
	rm -rf $(UNIT_VENV)
	$(PYTHON) -m venv $(UNIT_VENV)
	$(UNIT_DEPENDENCIES) > $(UNIT_VENV)/requirements.txt
	$(UNIT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-r $(UNIT_VENV)/requirements.txt
	find $(MMSERVE_HOME) -maxdepth 1 -name 'venv-unit-*' ! -path '$(UNIT_VENV)' -exec rm -rf {} +
	touch $@

venv-python: venv
	@echo $(PY)

# The vLLM text replica's venv (cluster/envs/vllm.toml), built like every group env.
setup-vllm: venv
	$(PY) cluster/group_env.py build vllm

models: venv
	$(PY) -m deployments.core.models prepare

# Debian packages the tests and benchmarks run, each named as its command: espeak-ng (real
# speech), redis-server (the response cache's Redis backend) and prometheus (the dashboard's
# test scrapes a live app with it). Tests start their own redis-server and prometheus on free
# loopback ports; the daemons the packages start under systemd (redis on 6379, Ray's default
# GCS port; prometheus and its node exporter on 9090 and 9100) are stopped and disabled.
SYSTEM_DEPS := espeak-ng redis-server prometheus

system-deps:
	@missing=$$(for cmd in $(SYSTEM_DEPS); do command -v $$cmd >/dev/null || echo $$cmd; done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
		if command -v systemctl >/dev/null; then for cmd in $$missing; do case $$cmd in \
			redis-server) units=redis-server;; \
			prometheus) units="prometheus prometheus-node-exporter";; *) continue;; esac; \
			$(SUDO) systemctl disable --now $$units >/dev/null 2>&1 || true; done; fi; \
	fi

# A profile whose text replica runs in the vLLM venv (the default, cpu) needs it built.
PROFILE_FILE := $(firstword $(wildcard cluster/profiles/$(PROFILE).yaml bench/profiles/$(PROFILE).yaml) $(PROFILE))
NEEDS_VLLM := $(shell grep -qs 'envs/vllm/bin/python' $(PROFILE_FILE) && echo setup-vllm)

serve: setup $(NEEDS_VLLM)
	$(PY) -m cluster.launch --profile $(PROFILE) $(if $(INGRESS),--ingress $(INGRESS)) $(SERVE_ARGS)

group-envs: venv
	$(PY) cluster/group_env.py build $(GROUP_ENVS)

# The local heterogeneous cluster: a head and the nodes of each group of cluster/local-cluster.yaml,
# a Serve proxy on each, HAProxy on 127.0.0.1:8000 in front of them.
cluster-up: setup group-envs
	$(PY) cluster/local.py up

cluster-deploy: venv
	$(PY) cluster/local.py deploy --profile $(CLUSTER_PROFILE)

cluster-status: venv
	$(PY) cluster/local.py status

cluster-down: venv
	$(PY) cluster/local.py down

# Every tier, lightest first: unit, model, integration, system.
test: setup system-deps group-envs setup-vllm
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit tests/model tests/integration tests/system

# The unit tier alone, in its light venv: no system packages, no model store.
unit: $(UNIT_VENV)/.ready
	$(UNIT_VENV)/bin/python -m pytest $(PYTEST_ARGS) tests/unit

# A short benchmark against an app it starts on its own local Ray head; reports go to
# bench/results/runs/ (see the README's benchmark section).
bench: setup system-deps $(NEEDS_VLLM)
	$(PY) -m bench run --profile $(PROFILE) $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
