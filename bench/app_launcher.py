"""Starts what a benchmark measures, and stops exactly that: the app on its own LocalRay, or the
baseline server in its own process.

A profile is what cluster/deploy.py finds, or `baseline` for bench/baseline_server.py
(`baseline-serialized`: its earlier, locked variant).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.deploy import deploy, serve_config, with_args, with_overrides
from cluster.haproxy_ingress import DEFAULT_INGRESS, uses_haproxy
from cluster.local_ray import SERVE_TUNING_ENV, LocalRay, free_port

REPO = Path(__file__).resolve().parent.parent
BASELINE = "baseline"
BASELINE_SERIALIZED = "baseline-serialized"  # the earlier, locked baseline
# Ray's metrics agent exports every 10 s by default; 5 s gives a usable time series and costs
# the machine under test about 1% of its CPU less than 2 s did.
METRICS_REPORT_INTERVAL_MS = "5000"
# Ray starts workers at nice 15. On a shared machine that hands the app's replicas' CPU to
# anything else running, while the ceiling and the baseline run at nice 0: even it out.
BENCH_RAY_ENV = {"RAY_metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS,
                 "RAY_worker_niceness": "0", **SERVE_TUNING_ENV}


@dataclass
class Target:
    """A running server under test: where to send load and where its metrics are."""

    url: str
    kind: str  # "app" | "baseline" | "peers" | "external"
    profile: str | None = None
    metrics_urls: list[str] = field(default_factory=list)
    ray_address: str | None = None
    dashboard_url: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    # {path: base URL}: routes another server of the stack serves (the rest go to `url`)
    route_urls: dict[str, str] = field(default_factory=dict)


@contextmanager
def running_app(profile: str, num_cpus: float = 2, model_dir: str | None = None,
                ingress: str = DEFAULT_INGRESS, args: dict[str, Any] | None = None):
    """A LocalRay with the app deployed from `profile` behind `ingress` (one of INGRESSES),
    with these builder `args` merged into the profile's; yields a Target, stops it all
    after."""
    env = {"PYTHONPATH": str(REPO), **BENCH_RAY_ENV}
    if model_dir or os.environ.get("MMSERVE_MODEL_DIR"):
        env["MMSERVE_MODEL_DIR"] = model_dir or os.environ["MMSERVE_MODEL_DIR"]
    cluster = LocalRay(num_cpus=num_cpus, env=env, haproxy=uses_haproxy(ingress))
    cluster.start()
    try:
        config = with_args(serve_config(profile, cluster.http_port), args or {})
        dashboard = f"http://127.0.0.1:{cluster.ports['dashboard']}"
        print(f"deploying profile {profile} on Ray {cluster.address} ...", file=sys.stderr,
              flush=True)
        deploy(dashboard, config)
        yield Target(url=f"http://127.0.0.1:{cluster.http_port}", kind="app", profile=profile,
                     metrics_urls=[f"http://127.0.0.1:{cluster.ports['metrics']}/metrics"],
                     ray_address=cluster.address, dashboard_url=dashboard, config=config)
    finally:
        _shutdown_ray_client()
        cluster.stop()


def redeploy(target: Target, overrides: list[dict[str, Any]]) -> Target:
    """Applies deployment overrides to a running app (a user_config change reconfigures live)."""
    config = with_overrides(target.config, overrides)
    deploy(target.dashboard_url, config)
    return Target(**{**target.__dict__, "config": config})


def _shutdown_ray_client() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def running_baseline(threads: int = 1, model_dir: str | None = None, timeout_s: float = 300,
                     serialize: bool = False, text_url: str | None = None):
    """bench/baseline_server.py on a free port in its own process group; yields a Target.
    `serialize`: the earlier baseline, one call per model at a time (a lock per model);
    `text_url`: its text group is the OpenAI server there (bench/peer_stack.py)."""
    port = free_port()
    command = [sys.executable, "-m", "bench.baseline_server", "--port", str(port),
               "--threads", str(threads), *(["--serialize"] if serialize else []),
               *(["--text-url", text_url] if text_url else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if model_dir:
        env["MMSERVE_MODEL_DIR"] = model_dir
    process = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, timeout_s)
        yield Target(url=url, kind="baseline",
                     profile=BASELINE_SERIALIZED if serialize else BASELINE,
                     config={"threads": threads,
                             "model_calls": "serialized" if serialize else "threadpool",
                             **({"text_url": text_url} if text_url else {})})
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the baseline server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the baseline server was not ready within {timeout_s} s")


def describe(target: Target) -> dict[str, Any]:
    return {"url": target.url, "kind": target.kind, "profile": target.profile,
            "metrics_urls": target.metrics_urls, "route_urls": target.route_urls,
            "config": json.loads(json.dumps(target.config, default=str))}
