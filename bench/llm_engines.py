"""vLLM (continuous batching) vs transformers, each served inside the app, same streaming load.

For each engine: start a local Ray head, deploy the app with that engine's profile
(cluster/profiles/cpu.yaml, cpu-vllm.yaml), warm up, then N concurrent clients stream chat
completions over HTTP (httpx, SSE) back to back for a fixed number of rounds. Prints output
tokens/s and time to first token (p50/p95) side by side, and the ratios; writes JSON and Markdown
to bench/results/.

    python -m bench.llm_engines                          # both engines, 16 clients, 64 tokens
    python -m bench.llm_engines --engines vllm --vllm-env VLLM_CPU_OMP_THREADS_BIND=auto
    python -m bench.llm_engines --vllm-engine enforce_eager=false max_num_seqs=16

--vllm-env and --vllm-engine override the cpu-vllm profile (runtime_env env_vars, text.engine)
to try engine settings; --transformers-engine does the same for the transformers engine.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import yaml

from cluster.deploy import APP_NAME, deploy, profile_path
from cluster.local_ray import LocalRay
from serve_app.core.models import default_model_dir, resolve
from serve_app.core.runtime_env import expand_runtime_env

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODEL = "smollm2-135m-instruct"
TOPICS = ["a lighthouse keeper", "a lost robot", "the first rain on Mars", "a jazz cat",
          "an old clockmaker", "a dragon who bakes", "a tiny island", "a midnight train"]
PROFILES = {"transformers": "cpu", "vllm": "cpu-vllm"}


@dataclass
class RequestResult:
    ttft_s: float
    total_s: float
    tokens: int


@dataclass
class EngineResult:
    engine: str
    requests: int
    output_tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    settings: dict


def app_args(engine: str, overrides: dict, env: dict) -> dict:
    args = yaml.safe_load(profile_path(PROFILES[engine]).read_text())["applications"][0]["args"]
    text = copy.deepcopy(args["text"])
    text["engine"].update(overrides)
    if env:
        runtime_env = text["resources"].setdefault("runtime_env", {})
        runtime_env.setdefault("env_vars", {}).update(env)
    return {**args, "text": text}


async def stream_one(client: httpx.AsyncClient, prompt: str, max_tokens: int) -> RequestResult:
    body = {"model": MODEL, "max_tokens": max_tokens, "temperature": 0.8, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt}]}
    started = time.perf_counter()
    ttft, tokens = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[len("data: "):])
            if "error" in event:
                raise RuntimeError(event["error"])
            choices = event.get("choices") or []
            if ttft is None and choices and choices[0]["delta"].get("content"):
                ttft = time.perf_counter() - started
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    total = time.perf_counter() - started
    return RequestResult(ttft if ttft is not None else total, total, tokens)


async def drive(url: str, clients: int, rounds: int, max_tokens: int) -> list[RequestResult]:
    """`clients` concurrent clients, each streaming `rounds` requests back to back."""
    limits = httpx.Limits(max_connections=clients * 2)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def one_client(c: int) -> list[RequestResult]:
            return [await stream_one(client, _prompt(c, r), max_tokens) for r in range(rounds)]

        per_client = await asyncio.gather(*(one_client(c) for c in range(clients)))
    return [result for results in per_client for result in results]


def _prompt(client: int, round_: int) -> str:
    topic = TOPICS[(client + round_) % len(TOPICS)]
    return f"Write a long, detailed story about {topic}. Client {client}, take {round_}."


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_engine(engine: str, args: dict, opts: argparse.Namespace) -> EngineResult:
    env = {"PYTHONPATH": str(REPO), "MMSERVE_MODEL_DIR": str(default_model_dir())}
    cluster = LocalRay(num_cpus=2, env=env).start()
    try:
        print(f"[{engine}] deploying ...", flush=True)
        started = time.monotonic()
        deploy(f"http://127.0.0.1:{cluster.ports['dashboard']}", {
            "http_options": {"host": "127.0.0.1", "port": cluster.http_port},
            "applications": [{"name": APP_NAME, "route_prefix": "/",
                              "import_path": "serve_app.app:build_app", "args": args}]})
        print(f"[{engine}] running after {time.monotonic() - started:.0f} s; warming up",
              flush=True)
        url = f"http://127.0.0.1:{cluster.http_port}"
        asyncio.run(drive(url, opts.clients, 1, 8))
        wall = time.perf_counter()
        results = asyncio.run(drive(url, opts.clients, opts.rounds, opts.max_tokens))
        wall = time.perf_counter() - wall
    finally:
        cluster.stop()
    tokens = sum(r.tokens for r in results)
    ttfts = [r.ttft_s for r in results]
    return EngineResult(engine, len(results), tokens, wall, tokens / wall,
                        statistics.median(ttfts), percentile(ttfts, 0.95), args["text"])


def offline_vllm(opts: argparse.Namespace) -> EngineResult:
    """The reference: vLLM's offline `LLM.chat` on the same prompts, in the vLLM venv, with
    the cpu-vllm profile's engine arguments and environment (no Ray, no HTTP, one batch)."""
    overrides = parse_pairs(opts.vllm_engine), parse_pairs(opts.vllm_env, False)
    text = app_args("vllm", *overrides)["text"]
    runtime_env = expand_runtime_env(text["resources"]["runtime_env"])
    python = runtime_env["py_executable"]
    # In-process engine core: vLLM's offline path as the DESIGN notes measured it.
    env = {**os.environ, **runtime_env.get("env_vars", {}), "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "OMP_NUM_THREADS": str(text["engine"]["threads"])}
    command = [python, "-m", "bench.llm_engines", "--offline-worker", json.dumps(
        {"engine": text["engine"], "clients": opts.clients, "max_tokens": opts.max_tokens})]
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"offline vLLM failed: {out.stderr[-3000:]}")
    return EngineResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def offline_worker(spec: dict) -> None:
    """Runs inside the vLLM venv: one offline batch of `clients` prompts, after a warm-up."""
    from vllm import LLM
    from vllm import SamplingParams as VllmSamplingParams

    from deployments.engines.vllm_text import engine_args
    from serve_app.core.config import TextEngineConfig

    config = TextEngineConfig(**spec["engine"])
    llm = LLM(**engine_args(config, str(resolve(config.model, default_model_dir()))))
    messages = [[{"role": "user", "content": _prompt(c, 0)}] for c in range(spec["clients"])]
    params = VllmSamplingParams(max_tokens=spec["max_tokens"], temperature=0.8)
    llm.chat(messages, VllmSamplingParams(max_tokens=8), use_tqdm=False)
    started = time.perf_counter()
    outputs = llm.chat(messages, params, use_tqdm=False)
    wall = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    print(json.dumps(asdict(EngineResult("vllm offline (LLM.chat, one batch)", len(outputs),
                                         tokens, wall, tokens / wall, float("nan"),
                                         float("nan"), spec["engine"]))))


def parse_pairs(pairs: list[str], typed: bool = True) -> dict:
    """KEY=VALUE pairs; typed values are YAML scalars (2, true), else strings (env vars)."""
    split = (p.split("=", 1) for p in pairs)
    return {key: yaml.safe_load(value) if typed else value for key, value in split}


def report(results: list[EngineResult], opts: argparse.Namespace, load: str) -> str:
    lines = [f"# LLM engines under streaming load ({opts.clients} clients x {opts.rounds} "
             f"rounds, max_tokens {opts.max_tokens})", "",
             f"Command: `python -m bench.llm_engines {' '.join(sys.argv[1:])}`  ",
             f"Load before: `{load}`", "",
             "| engine | requests | output tokens | wall s | tokens/s | TTFT p50 s | TTFT p95 s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r.engine} | {r.requests} | {r.output_tokens} | {r.wall_s:.1f} | "
                     f"{r.tokens_per_s:.1f} | {r.ttft_p50_s:.2f} | {r.ttft_p95_s:.2f} |")
    by_name = {r.engine: r for r in results}
    if {"vllm", "transformers"} <= by_name.keys():
        v, t = by_name["vllm"], by_name["transformers"]
        lines += ["", f"vLLM / transformers: tokens/s x{v.tokens_per_s / t.tokens_per_s:.2f}, "
                  f"TTFT p50 x{v.ttft_p50_s / t.ttft_p50_s:.2f}, "
                  f"TTFT p95 x{v.ttft_p95_s / t.ttft_p95_s:.2f} (below 1 is faster)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.llm_engines")
    parser.add_argument("--engines", nargs="+", default=["transformers", "vllm"],
                        choices=sorted(PROFILES))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--vllm-env", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--vllm-engine", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--transformers-engine", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--offline", action="store_true",
                        help="also run vLLM offline (LLM.chat, one batch) as the reference")
    parser.add_argument("--offline-worker", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.offline_worker:
        offline_worker(json.loads(opts.offline_worker))
        return 0
    overrides = {"vllm": (parse_pairs(opts.vllm_engine), parse_pairs(opts.vllm_env, False)),
                 "transformers": (parse_pairs(opts.transformers_engine), {})}
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = [run_engine(engine, app_args(engine, *overrides[engine]), opts)
               for engine in opts.engines]
    if opts.offline:
        results.append(offline_vllm(opts))
    text = report(results, opts, load)
    after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    text += f"Load after: `{after}`\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"llm_engines{'-' + opts.tag if opts.tag else ''}"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"command": ["python", "-m", "bench.llm_engines", *sys.argv[1:]], "load": load,
         "results": [asdict(r) for r in results]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
