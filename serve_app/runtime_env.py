"""`${VAR}` expansion in runtime_env values, which Serve config files do not do themselves.

A profile names the vLLM venv's interpreter as `${MMSERVE_HOME}/venv-vllm/bin/python`. The app
builder expands it where it runs: in the cluster's build task for `serve run`/`serve deploy`,
so against the Ray node's environment (a local head inherits the shell's). MMSERVE_HOME defaults
to ~/.cache/mmserve, as in the Makefile. Only `${NAME}` is expanded (not `$NAME`), and a name
that is neither set nor defaulted is an error rather than an empty string.
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
    if executable and " " not in executable and not os.path.exists(executable):
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
