"""The baseline stack: the server a team writes first, in one plain uvicorn process with no Ray,
behind the app's own front end so the same workloads run against it and it enforces the same
limits.

    python -m bench.baseline_server --port 8001 [--threads 1] [--model-dir DIR] [--serialize]
                                    [--text-url http://127.0.0.1:8002]

One copy of each model, built in this process (bench/local_handle.py stands in for each
group's Serve handle), and every model call made in the web server's threadpool, as a sync
FastAPI endpoint makes it: no lock, no batching, no prefix cache, so concurrent requests to one
model run in it side by side, up to the pool's 40 threads (bench/baseline_replicas.py). What it
leaves out is what the app adds: batching across requests, continuous batching of text, and
replica groups (several copies of a model, each with its own cores).

`--text-url` makes it the CLIP and Whisper half of a stack whose LLM is vLLM's own OpenAI
server at that URL (bench/peer_stack.py): it then loads no text model; its pipeline route
calls that server over HTTP for the LLM stage, and chat goes to that server directly.

`--serialize` is the bench's earlier, locked baseline, labelled as such: one call per model at
a time. On exit it prints each model's call counts, with the most calls that ran at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bench.baseline_replicas import baseline_replicas
from bench.local_handle import LocalHandle
from deployments.core.config import AppConfig
from deployments.core.models import default_model_dir
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.routes import build_api


def baseline_config(threads: int = 1, model_dir: str | None = None) -> AppConfig:
    config = AppConfig(model_dir=model_dir or str(default_model_dir()))
    for group in (config.text, config.vision, config.audio):
        group.engine.threads = threads
    config.text.engine.enable_prefix_caching = False  # a first server caches no prefixes
    return config


def build_baseline(config: AppConfig, serialize: bool = False,
                   text_url: str | None = None) -> FastAPI:
    """The app's routes over the baseline's replicas; `app.state.replicas` holds them, each
    with its `calls` (bench/baseline_replicas.py: ModelCalls). `text_url`: the text group is
    the OpenAI server there."""
    replicas = baseline_replicas(config, serialize, text_url)
    app = build_api(FrontEnd(config, *(ReplicaGroup(name, LocalHandle(replicas[name]))
                                       for name in ("text", "vision", "audio"))))
    app.state.replicas = replicas
    app.router.lifespan_context = _reporting_calls_at_exit
    return app


@asynccontextmanager
async def _reporting_calls_at_exit(app: FastAPI) -> AsyncIterator[None]:
    yield
    print("baseline model calls:", json.dumps(model_calls(app)), file=sys.stderr, flush=True)


def model_calls(app: FastAPI) -> dict[str, dict]:
    return {name: replica.calls.snapshot() for name, replica in app.state.replicas.items()}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1, help="torch/CTranslate2 threads")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--serialize", action="store_true",
                        help="the earlier, locked baseline: one call per model at a time")
    parser.add_argument("--text-url", default=None,
                        help="an OpenAI server (vLLM's) for the text group, instead of a model "
                        "in this process")
    return parser


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parser().parse_args(argv)
    app = build_baseline(baseline_config(args.threads, args.model_dir), args.serialize,
                         args.text_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
