"""${VAR} expansion in runtime_env (Serve config files do not expand variables themselves)."""

from __future__ import annotations

import pytest

from deployments.core.runtime_env import RuntimeEnvError, expand_runtime_env, prepare_runtime_env


def test_expands_variables_in_nested_strings_only():
    env = {"MMSERVE_HOME": "/cache", "LEVEL": "2"}
    runtime_env = {"py_executable": "${MMSERVE_HOME}/venv/bin/python",
                   "env_vars": {"A": "${LEVEL}", "B": "$LEVEL stays"}, "pip": ["x==${LEVEL}"],
                   "config": {"setup_timeout_seconds": 60}}
    assert expand_runtime_env(runtime_env, env) == {
        "py_executable": "/cache/venv/bin/python",
        "env_vars": {"A": "2", "B": "$LEVEL stays"}, "pip": ["x==2"],
        "config": {"setup_timeout_seconds": 60}}


def test_mmserve_home_defaults_to_the_makefile_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    expanded = expand_runtime_env("${MMSERVE_HOME}/envs/vllm", {})
    assert expanded == f"{tmp_path}/.cache/mmserve/envs/vllm"


def test_an_unset_variable_is_an_error_naming_it():
    with pytest.raises(RuntimeEnvError, match=r"\$\{NOPE\}"):
        expand_runtime_env({"env_vars": {"X": "${NOPE}"}}, {})


def test_a_missing_interpreter_is_an_error_naming_it_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    with pytest.raises(RuntimeEnvError, match="make setup-vllm") as error:
        prepare_runtime_env({"py_executable": "${MMSERVE_HOME}/envs/vllm/bin/python"})
    assert f"{tmp_path}/envs/vllm/bin/python" in str(error.value)


def test_an_existing_interpreter_passes(tmp_path, monkeypatch):
    python = tmp_path / "python"
    python.touch()
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path))
    assert prepare_runtime_env({"py_executable": "${MMSERVE_HOME}/python"}) == {
        "py_executable": str(python)}


def test_a_non_string_env_var_is_an_error_naming_it():
    with pytest.raises(RuntimeEnvError, match="VLLM_USE_AOT_COMPILE must be a string"):
        prepare_runtime_env({"env_vars": {"VLLM_USE_AOT_COMPILE": 0}})


def test_shell_syntax_and_commands_are_left_for_the_node():
    for executable in ("${OTHER:-/opt/env}/bin/python", "uv run --python 3.11"):
        assert prepare_runtime_env({"py_executable": executable}) == {"py_executable": executable}
