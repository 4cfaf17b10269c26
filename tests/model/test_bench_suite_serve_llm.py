"""The serve-llm suite's arithmetic (the app against ray.serve.llm, per stream count) and the
ray.serve.llm config it deploys: the app's model, engine arguments, env and CPU share."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.llm_offline import text_settings
from bench.ray_serve_llm import APP_NAME, BUILDER, llm_config, serve_llm_config
from bench.suites.serve_llm import CLIENTS, summarize
from deployments.core.config import TextEngineConfig
from deployments.core.cpu_features import cpu_features
from deployments.core.precision import cpu_dtype
from deployments.engines.vllm_text import engine_args


def report(clients: int, tokens_per_s: float, ttft_p95: float, errors: int = 0) -> dict:
    ok = 40 - errors
    return {"load": {"concurrency": clients},
            "metrics": {"overall": {
                "output_token_throughput": tokens_per_s,
                "requests": {"total": 40, "ok": ok, "errors": errors},
                "prompt_tokens": 231 * ok, "output_tokens": 64 * ok,
                "ttft": {"p50": ttft_p95 / 2, "p95": ttft_p95},
                "itl": {"p50": 0.05, "p95": 0.1},
                "goodput": {"requests_per_s": 1.5, "good": 30, "fraction": 0.75}}}}


def runs(app: dict[int, tuple], anchor: dict[int, tuple]) -> SimpleNamespace:
    made = {f"app-c{c}": report(c, *app[c]) for c in app}
    made.update({f"ray-serve-llm-c{c}": report(c, *anchor[c]) for c in anchor})
    return SimpleNamespace(runs=made)


def test_the_app_leads_when_it_serves_more_tokens_with_a_lower_ttft_p95_at_each_count():
    results, markdown = summarize(runs({8: (120.0, 0.6), 32: (200.0, 1.5)},
                                       {8: (100.0, 0.8), 32: (160.0, 2.0)}))
    at8, at32 = (results["app_vs_ray_serve_llm"][str(c)] for c in CLIENTS)
    assert at8["output_tokens_per_s_app_vs_ray"] == pytest.approx(1.2)
    assert at8["ttft_p95_app_vs_ray"] == pytest.approx(0.75)
    assert at32["output_tokens_per_s_app_vs_ray"] == pytest.approx(1.25)
    assert at32["ttft_p95_app_vs_ray"] == pytest.approx(0.75)
    assert at8["app_leads_both"] and at32["app_leads_both"] and results["goal_met"]
    row = results["runs"]["ray-serve-llm-c32"]
    assert row["output_tokens_per_request"] == 64 and row["prompt_tokens_per_request"] == 231
    assert "| 32 | 1.25 | 0.75 | yes | yes |" in markdown
    assert "| ray.serve.llm (build_openai_app) | 8 | 100.0 | 0.40 | 0.80 | 0.050 | 40 | 0 | " \
           "231.0 | 64.0 | 75% |" in markdown
    assert markdown.rstrip().endswith("at 8 and 32 streams): met.")


def test_one_lost_metric_at_one_count_misses_the_goal():
    results, markdown = summarize(runs({8: (120.0, 0.6), 32: (150.0, 1.5)},
                                       {8: (100.0, 0.8), 32: (160.0, 2.0)}))
    at32 = results["app_vs_ray_serve_llm"]["32"]
    assert not at32["app_leads_output_tokens_per_s"] and at32["app_leads_ttft_p95"]
    assert results["app_vs_ray_serve_llm"]["8"]["app_leads_both"]
    assert not results["goal_met"]
    assert "| 32 | 0.94 | 0.75 | no | yes |" in markdown and "NOT met" in markdown


def test_errors_forfeit_the_lead_and_a_missing_run_the_goal():
    results, _ = summarize(runs({8: (120.0, 0.6, 3), 32: (200.0, 1.5)},
                                {8: (100.0, 0.8), 32: (160.0, 2.0)}))
    assert not results["app_vs_ray_serve_llm"]["8"]["app_leads_both"]
    results, _ = summarize(runs({8: (120.0, 0.6)}, {8: (100.0, 0.8), 32: (160.0, 2.0)}))
    assert list(results["app_vs_ray_serve_llm"]) == ["8"] and not results["goal_met"]


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    folder = tmp_path / "smollm2-135m-instruct"
    folder.mkdir()
    (folder / ".complete").write_text("ok")
    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path / "home"))
    return str(tmp_path)


def test_ray_serve_llm_gets_the_profiles_model_engine_env_and_cpu_share(store, tmp_path):
    text = text_settings("cpu")
    engine = TextEngineConfig(**text["engine"])
    config = llm_config("cpu", store)
    assert config["model_loading_config"] == {
        "model_id": "smollm2-135m-instruct",
        "model_source": f"{store}/smollm2-135m-instruct"}
    app_args = engine_args(engine, "path")
    kwargs = config["engine_kwargs"]
    assert kwargs == {k: v for k, v in app_args.items()
                      if k not in ("model", "served_model_name")}
    # the profile says auto: chosen from this CPU, as the app's own vLLM replica does
    assert kwargs["dtype"] == cpu_dtype(cpu_features()).value
    assert kwargs["max_model_len"] == 4096
    assert kwargs["max_num_seqs"] == 32 and kwargs["enable_prefix_caching"]
    assert kwargs["enforce_eager"] is False and kwargs["kv_cache_memory_bytes"] == 1 << 30
    runtime_env = config["runtime_env"]
    assert runtime_env["py_executable"] == f"{tmp_path}/home/envs/vllm/bin/python"
    env = runtime_env["env_vars"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and env["VLLM_USE_AOT_COMPILE"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert env["VLLM_CACHE_ROOT"] == f"{tmp_path}/home/vllm-cache"
    assert env["TORCHINDUCTOR_CACHE_DIR"] == f"{tmp_path}/home/inductor-cache"
    assert config["placement_group_config"]["bundles"] == [{"CPU": 0.5}]
    assert config["deployment_config"] == {"num_replicas": 1,
                                           "ray_actor_options": {"num_cpus": 0}}
    assert config["log_engine_metrics"] is False  # the app's engine disables log stats too


def test_the_whole_ray_serve_llm_app_runs_in_the_vllm_venv(store, tmp_path):
    serve = serve_llm_config(8123, "cpu", store)
    assert serve["http_options"] == {"host": "127.0.0.1", "port": 8123}
    (app,) = serve["applications"]
    assert app["name"] == APP_NAME and app["import_path"] == BUILDER
    assert app["runtime_env"] == {"py_executable": f"{tmp_path}/home/envs/vllm/bin/python"}
    assert app["args"]["ingress_deployment_config"] == {"num_replicas": 1,
                                                        "ray_actor_options": {"num_cpus": 0}}
    with pytest.raises(ValueError, match="runs vLLM"):
        llm_config("cpu-transformers", store)
