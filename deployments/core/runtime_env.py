"""`${VAR}` expansion in runtime_env values, done by the app builder, with checks.

A profile names the vLLM venv's interpreter as `${MMSERVE_HOME}/envs/vllm/bin/python`. Serve's
config schema keeps such strings as they are; Ray would expand them only when it starts a
worker (py_executable through bash, env_vars with unset names becoming ""), so a missing venv
or an unset MMSERVE_HOME shows up as a replica that never starts. The builder expands them
instead, where it runs (the cluster's build task for `serve run`/`serve deploy`, so against
the Ray node's environment; a local head inherits the shell's), with MMSERVE_HOME defaulting
to ~/.cache/mmserve as in the Makefile, and fails at deploy time naming what is wrong. Only
`${NAME}` is expanded; shell syntax such as `${NAME:-default}` is left for the node's bash.
"""

from __future__ import annotations

import os
import re
from typing import Any

DEFAULTS = {"MMSERVE_HOME": "~/.cache/mmserve"}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RuntimeEnvError(ValueError):
    """A runtime_env that cannot work: an unset variable, a missing interpreter."""


def prepare_runtime_env(runtime_env: dict[str, Any]) -> dict[str, Any]:
    """The runtime_env expanded, after checking what Ray would only report as a replica that
    fails to start: a py_executable that does not exist, an env var that is not a string."""
    expanded = expand_runtime_env(runtime_env)
    for name, value in expanded.get("env_vars", {}).items():
        if not isinstance(value, str):  # Ray would only fail to start the replica
            raise RuntimeEnvError(f"runtime_env env_vars {name} must be a string; quote "
                                  f"{value!r} in YAML")
    executable = expanded.get("py_executable")
    # Ray runs py_executable through bash on the node: a command, or shell syntax such as
    # ${VAR:-default} left for the node to expand, is not a path to check here.
    if executable and not re.search(r"[\s$]", executable) and not os.path.exists(executable):
        raise RuntimeEnvError(
            f"runtime_env py_executable {executable} does not exist; build that venv first "
            "(for the vLLM profiles: make setup-vllm)")
    return expanded


def expand_runtime_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """`value` with `${NAME}` replaced in every string, recursively, and a leading ~ expanded."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {key: expand_runtime_env(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_runtime_env(item, env) for item in value]
    if isinstance(value, str):
        return os.path.expanduser(_VARIABLE.sub(lambda m: _lookup(m.group(1), env), value))
    return value


def _lookup(name: str, env: dict[str, str]) -> str:
    if env.get(name):
        return env[name]
    if name in DEFAULTS:
        return os.path.expanduser(DEFAULTS[name])
    raise RuntimeEnvError(f"runtime_env names ${{{name}}}, which is not set")
