"""The peer stack's vLLM server: started with the flags and environment the app's text group
gives vLLM in the same profile, from the vLLM venv's Python, as `-m` of vLLM's api_server."""

from __future__ import annotations

from bench.peer_stack import VLLM_MODULE, server_flags, vllm_server_command
from bench.ray_serve_llm import replica_runtime_env
from deployments.core.config import TextEngineConfig
from deployments.engines.vllm_text import choose_dtype, engine_args


def test_engine_keywords_become_the_servers_flags():
    flags = server_flags({"model": "/m", "max_num_seqs": 32, "enforce_eager": False,
                          "enable_prefix_caching": True, "max_model_len": None,
                          "compilation_config": {"level": 3}})
    assert flags == ["--model", "/m", "--max-num-seqs", "32", "--no-enforce-eager",
                     "--enable-prefix-caching", "--compilation-config", '{"level": 3}']
    assert server_flags({"disable_log_stats": True}) == ["--disable-log-stats"]
    assert server_flags({"disable_log_stats": False}) == []  # a switch with no --no- form


def test_the_server_runs_the_cpu_profiles_text_engine(tmp_path, monkeypatch):
    from bench.llm_offline import text_settings

    monkeypatch.setenv("MMSERVE_HOME", str(tmp_path / "home"))
    (tmp_path / "smollm2-135m-instruct").mkdir()
    (tmp_path / "smollm2-135m-instruct" / ".complete").write_text("")
    command, env = vllm_server_command(8123, "cpu", str(tmp_path))
    text = text_settings("cpu")
    engine = TextEngineConfig(**text["engine"])
    assert command[0] == str(tmp_path / "home" / "envs" / "vllm" / "bin" / "python")
    assert command[1:6] == ["-m", VLLM_MODULE, "--host", "127.0.0.1", "--port"]
    assert command[6] == "8123"
    expected = engine_args(engine, str(tmp_path / "smollm2-135m-instruct"))
    assert command[7:] == server_flags(expected)
    flags = valued_flags(command[7:])
    assert flags["--model"] == str(tmp_path / "smollm2-135m-instruct")
    assert flags["--dtype"] == choose_dtype(engine, on_cpu=True).value  # auto resolved
    assert flags["--max-num-seqs"] == str(engine.max_num_seqs)
    assert flags["--kv-cache-memory-bytes"] == str(int(engine.cpu_kvcache_space_gb * 2**30))
    assert env == replica_runtime_env(text, engine)["env_vars"]
    assert env["OMP_NUM_THREADS"] == str(engine.threads)


def valued_flags(tokens: list[str]) -> dict[str, str]:
    """{flag: value} of the flags followed by a value (booleans stand alone)."""
    return {flag: value for flag, value in zip(tokens, tokens[1:])
            if flag.startswith("--") and not value.startswith("--")}
