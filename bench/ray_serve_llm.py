"""Ray's own LLM stack, `ray.serve.llm`, serving the app's text model with the app's engine
settings: the anchor the app's vLLM text group is measured against (`python -m bench suite
serve-llm`).

`serve_llm_config` turns a profile's `text` group into a Serve config of
`ray.serve.llm:build_openai_app` (the declarative form of `build_openai_app(LLMServingArgs)`):
the same model folder from the model store, served under the same name; vLLM engine_kwargs
made by the app's own vLLM engine from the same `text.engine` settings (deployments/engines/
vllm_text.py `engine_args`); the same runtime_env (the vLLM venv through py_executable, the same
env vars, OMP threads); one replica holding the same CPU share. Like the app's ingress, Ray's
OpenAI ingress is one replica that reserves no CPU.

What differs is Ray's stack itself: its OpenAI ingress and vLLM's OpenAI serving layer in
place of the app's, and on CPU `ray.serve.llm` sets vLLM's `distributed_executor_backend` to
`mp`, which runs the model in a worker process beside vLLM's engine-core process (three
processes); the app's engine leaves vLLM's `uni` executor, the model in the engine core (two).
Ray's engine metrics are off, as the app's are (`disable_log_stats`), so both engines do the
same bookkeeping.

The main venv has no pyarrow, which `ray.serve.llm` imports, nor vLLM, which its config
validation imports: the whole application (its build task, ingress and server) runs in the
vLLM venv, whose spec (cluster/envs/vllm.toml) carries what `ray.serve.llm` needs.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any

from bench.app_launcher import BENCH_RAY_ENV, REPO, Target
from bench.llm_offline import text_settings
from cluster.deploy import deploy
from cluster.local_ray import LocalRay
from deployments.core.config import TextEngineConfig
from deployments.core.models import resolve
from deployments.core.runtime_env import expand_runtime_env
from deployments.engines.vllm_text import engine_args

APP_NAME = "ray-serve-llm"
BUILDER = "ray.serve.llm:build_openai_app"
PROFILE = "cpu"


def llm_engine_kwargs(engine: TextEngineConfig) -> dict[str, Any]:
    """The app's vLLM AsyncEngineArgs for these settings, less what LLMConfig sets itself
    (`model`, `served_model_name`: from model_loading_config)."""
    if engine.name != "vllm":
        raise ValueError(f"ray.serve.llm runs vLLM; the profile's text engine is {engine.name}")
    kwargs = engine_args(engine, "")
    for key in ("model", "served_model_name"):
        kwargs.pop(key)
    return kwargs


def replica_runtime_env(text: dict[str, Any], engine: TextEngineConfig) -> dict[str, Any]:
    """The text group's runtime_env, expanded, with the threads and KV-cache size the app's
    engine gives vLLM spelled as the env vars vLLM reads."""
    runtime_env = expand_runtime_env(text.get("resources", {}).get("runtime_env", {}))
    env_vars = {**runtime_env.get("env_vars", {}), "OMP_NUM_THREADS": str(engine.threads)}
    if engine.cpu_kvcache_space_gb is not None:  # vLLM's CPU platform reads whole GiB
        env_vars["VLLM_CPU_KVCACHE_SPACE"] = str(int(engine.cpu_kvcache_space_gb))
    return {**runtime_env, "env_vars": env_vars}


def llm_config(profile: str = PROFILE, model_dir: str | None = None) -> dict[str, Any]:
    """An LLMConfig (as its dict) with the profile's text model, engine and resources."""
    text = text_settings(profile)
    engine = TextEngineConfig(**text.get("engine", {}))
    num_cpus = text.get("resources", {}).get("num_cpus", 1)
    return {
        "model_loading_config": {"model_id": engine.served_model_name,
                                 "model_source": str(resolve(engine.model, model_dir))},
        "engine_kwargs": llm_engine_kwargs(engine),
        "runtime_env": replica_runtime_env(text, engine),
        "accelerator_config": {"kind": "cpu"},
        # The replica and vLLM's worker share one bundle: the app's text replica's CPU share.
        "placement_group_config": {"bundles": [{"CPU": num_cpus}], "strategy": "PACK"},
        "deployment_config": {"num_replicas": 1, "ray_actor_options": {"num_cpus": 0}},
        # The app's engine runs vLLM with disable_log_stats, which Ray's metrics need.
        "log_engine_metrics": False,
    }


def serve_llm_config(http_port: int | None = None, profile: str = PROFILE,
                     model_dir: str | None = None) -> dict[str, Any]:
    """A Serve config of ray.serve.llm's OpenAI app, run wholly in the text group's venv."""
    config = llm_config(profile, model_dir)
    python = config["runtime_env"].get("py_executable")
    app = {"name": APP_NAME, "route_prefix": "/", "import_path": BUILDER,
           "runtime_env": {"py_executable": python} if python else {},
           "args": {"llm_configs": [config],
                    "ingress_deployment_config": {"num_replicas": 1,
                                                  "ray_actor_options": {"num_cpus": 0}}}}
    serve: dict[str, Any] = {"proxy_location": "HeadOnly", "applications": [app]}
    if http_port is not None:
        serve["http_options"] = {"host": "127.0.0.1", "port": http_port}
    return serve


@contextmanager
def running_ray_serve_llm(profile: str = PROFILE, num_cpus: float = 2,
                          model_dir: str | None = None):
    """A LocalRay, as bench.app_launcher.running_app starts one, with ray.serve.llm deployed;
    yields a Target, stops it all after."""
    model_dir = model_dir or os.environ.get("MMSERVE_MODEL_DIR")
    env = {"PYTHONPATH": str(REPO), **BENCH_RAY_ENV}
    if model_dir:
        env["MMSERVE_MODEL_DIR"] = model_dir
    cluster = LocalRay(num_cpus=num_cpus, env=env)
    cluster.start()
    try:
        config = serve_llm_config(cluster.http_port, profile, model_dir)
        print(f"deploying ray.serve.llm ({profile}'s text engine) on Ray {cluster.address} ...",
              file=sys.stderr, flush=True)
        deploy(cluster.dashboard_url, config)
        yield Target(url=f"http://127.0.0.1:{cluster.http_port}", kind="ray-serve-llm",
                     profile=f"ray.serve.llm ({profile} text engine)",
                     metrics_urls=[f"http://127.0.0.1:{cluster.ports['metrics']}/metrics"],
                     ray_address=cluster.address, dashboard_url=cluster.dashboard_url,
                     config=config)
    finally:
        _shutdown_ray_client()
        cluster.stop()


def _shutdown_ray_client() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
