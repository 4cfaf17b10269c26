"""The baseline stack: the app's own front end and replicas in one plain uvicorn process, with
no Ray and no batching, so the same workloads run against it and it enforces the same limits.

    python -m bench.baseline_server --port 8001 [--threads 1] [--model-dir /tmp/mmstore]

Each modality's replica is built in this process (serve_app/local_handle.py stands in for its
Serve handle) with batches of one: every model serves one request at a time on its own thread,
as a plain server holding one copy of each model does, while different models run side by
side. What it leaves out is what the benchmark measures: batching across requests and replica
groups (several copies of a model, each with its own cores).
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI

from serve_app.calls import ReplicaGroup
from serve_app.core.config import AppConfig, Batching, DeploymentSettings
from serve_app.core.models import default_model_dir
from serve_app.frontend import FrontEnd
from serve_app.local_handle import LocalHandle
from serve_app.routes import build_api

NO_BATCHING = Batching(max_batch_size=1, batch_wait_timeout_s=0.0)


def baseline_config(threads: int = 1, model_dir: str | None = None) -> AppConfig:
    config = AppConfig(model_dir=model_dir or str(default_model_dir()))
    for group in (config.text, config.vision, config.audio):
        group.engine.threads = threads
        group.batching = NO_BATCHING
    return config


def build_baseline(config: AppConfig) -> FastAPI:
    from deployments.audio import SpeechTranscriber
    from deployments.text import TextGenerator
    from deployments.vision import ImageEmbedder

    groups = [ReplicaGroup(name, LocalHandle(_in_process(deployment, settings,
                                                          config.model_dir)))
              for name, deployment, settings in (("text", TextGenerator, config.text),
                                                 ("vision", ImageEmbedder, config.vision),
                                                 ("audio", SpeechTranscriber, config.audio))]
    return build_api(FrontEnd(config, *groups))


def _in_process(deployment: Any, settings: DeploymentSettings, model_dir: str) -> Any:
    replica = deployment.func_or_class(settings.model_dump(exclude={"batching"}), model_dir)
    replica.reconfigure(settings.batching.model_dump())
    return replica


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1, help="torch/CTranslate2 threads")
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args(argv)
    app = build_baseline(baseline_config(args.threads, args.model_dir))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
