"""The offline reference for the LLM suite: a profile's text engine, outside any server, on one
batch of chat prompts at once (16 by default), with no Ray and no HTTP.

    transformers: TransformersTextEngine.generate_batch on the token ids of the chats
    vllm:         vLLM's offline `LLM.chat`, with the engine core in-process
                  (VLLM_ENABLE_V1_MULTIPROCESSING=0)

Each runs in a fresh process started with the profile's Python (the vLLM venv for cpu,
through its runtime_env py_executable), its env vars and OMP_NUM_THREADS = the engine's
`threads`, so the thread count is the process's own from the start (as bench/ceiling.py does).
The prompts are drawn from the workload the server is measured with; one batch of other
prompts from it warms the engine up first (vLLM compiles then), so the prefix cache gains
nothing from the warm-up but the chat template's own prefix, as in the server.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cluster.deploy import serve_config, with_args
from deployments.core.config import TextEngineConfig
from deployments.core.runtime_env import expand_runtime_env

REPO = Path(__file__).resolve().parent.parent
BATCH = 16
WARMUP_TOKENS = 8


def chats_of(workload: Any, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` chat requests of the workload: {"messages", "max_tokens", "temperature"}."""
    rng = random.Random(seed)
    bodies = [workload.next_request(rng).json for _ in range(count)]
    return [{key: body[key] for key in ("messages", "max_tokens", "temperature")}
            for body in bodies]


def text_settings(profile: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The profile's `text` args, with `args` (builder args) merged in."""
    config = with_args(serve_config(profile), args or {})
    return config["applications"][0]["args"].get("text", {})


def measure(profile: str, workload: Any, args: dict[str, Any] | None = None,
            batch: int = BATCH, seed: int = 0, timeout_s: float = 1800) -> dict[str, Any]:
    """Output tokens/s of the profile's text engine on one batch of `batch` of the workload's
    chats, after one warm-up batch; in a subprocess with the profile's Python and threads."""
    text = text_settings(profile, args)
    engine = TextEngineConfig(**text.get("engine", {}))
    runtime_env = expand_runtime_env(text.get("resources", {}).get("runtime_env", {}))
    python = runtime_env.get("py_executable", sys.executable)
    env = {**os.environ, **runtime_env.get("env_vars", {}), "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": str(engine.threads)}
    if engine.name == "vllm":  # vLLM's offline path as the DESIGN notes measured it
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    chats = chats_of(workload, 2 * batch, seed)
    spec = {"engine": engine.model_dump(), "chats": chats[:batch], "warmup": chats[batch:]}
    out = subprocess.run([python, "-m", "bench.llm_offline"], input=json.dumps(spec), env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if out.returncode:
        raise RuntimeError(f"offline {engine.name} failed: {out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "profile": profile,
            "args": args or {}, "python": python}


def _transformers(engine: TextEngineConfig, spec: dict[str, Any]) -> tuple[int, int, float]:
    from deployments.core.generation import SamplingParams
    from deployments.core.models import default_model_dir
    from deployments.engines.transformers_text import TransformersTextEngine

    model = TransformersTextEngine.from_config(engine, str(default_model_dir()))

    def run(chats: list[dict[str, Any]], max_tokens: int | None = None) -> tuple[int, int]:
        prompts = [model.encode_chat(chat["messages"]) for chat in chats]
        params = [SamplingParams(max_tokens=max_tokens or chat["max_tokens"],
                                 temperature=chat["temperature"]) for chat in chats]
        outcomes = model.generate_batch(prompts, params)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise failed[0]
        return (sum(len(p) for p in prompts), sum(o.completion_tokens for o in outcomes))

    run(spec["warmup"], WARMUP_TOKENS)
    started = time.perf_counter()
    prompt_tokens, output_tokens = run(spec["chats"])
    return prompt_tokens, output_tokens, time.perf_counter() - started


def _vllm(engine: TextEngineConfig, spec: dict[str, Any]) -> tuple[int, int, float]:
    from vllm import LLM, SamplingParams

    from deployments.core.models import default_model_dir, resolve
    from deployments.engines.vllm_text import engine_args

    llm = LLM(**engine_args(engine, str(resolve(engine.model, default_model_dir()))))
    llm.chat([c["messages"] for c in spec["warmup"]], SamplingParams(max_tokens=WARMUP_TOKENS),
             use_tqdm=False)
    chats = spec["chats"]
    params = [SamplingParams(max_tokens=c["max_tokens"], temperature=c["temperature"])
              for c in chats]
    started = time.perf_counter()
    outputs = llm.chat([c["messages"] for c in chats], params, use_tqdm=False)
    seconds = time.perf_counter() - started
    return (sum(len(o.prompt_token_ids) for o in outputs),
            sum(len(o.outputs[0].token_ids) for o in outputs), seconds)


ENGINES = {"transformers": _transformers, "vllm": _vllm}


def main() -> int:
    """The subprocess: reads the spec on stdin, prints one JSON line of results."""
    spec = json.loads(sys.stdin.read())
    engine = TextEngineConfig(**spec["engine"])
    if engine.name not in ENGINES:
        raise SystemExit(f"no offline measurement for the {engine.name} engine")
    prompt_tokens, output_tokens, seconds = ENGINES[engine.name](engine, spec)
    print(json.dumps({"engine": engine.name, "dtype": engine.dtype, "threads": engine.threads,
                      "batch": len(spec["chats"]), "prompt_tokens": prompt_tokens,
                      "output_tokens": output_tokens, "seconds": seconds,
                      "tokens_per_s": output_tokens / seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
