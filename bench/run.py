"""One benchmark run: load from the client actors, the server scraped meanwhile, then the
report (JSON, Markdown, PNG plots) written to a folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from bench import markdown, plots
from bench.app_launcher import (
    BASELINE,
    BASELINE_SERIALIZED,
    BENCH_RAY_ENV,
    REPO,
    Target,
    describe,
    running_app,
    running_baseline,
)
from bench.environment import machine, now_iso, uptime
from bench.load import LoadSpec, generate_load
from bench.metrics import run_metrics
from bench.objectives import Objectives
from bench.redact import register_secret
from bench.report import build_report, write_json, write_text
from bench.server_view import Scraper, server_report
from bench.workloads import Workload
from cluster.haproxy_ingress import DEFAULT_INGRESS
from cluster.local_ray import LocalRay

BENCH_DIR = Path(__file__).resolve().parent


def execute_run(target: Target, workload: Workload, spec: LoadSpec, bounds: dict[str, float],
                *, name: str, command: str, out: Path | None, scrape_interval_s: float = 5.0,
                scrape_settle_s: float = 5.5,
                quiet: bool = False, include_records: bool = False,
                make_plots: bool = True, objectives: Objectives | None = None,
                api_key: str | None = None) -> dict[str, Any]:
    """`objectives`: each route's own (bench/objectives.py), the app's by default; `api_key`:
    the key every request sends (None: $MMSERVE_API_KEY), never written to the report."""
    register_secret(api_key)
    environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
    if not quiet:
        print(f"{name}: {workload.name} against {target.url}; load {spec.describe()}",
              file=sys.stderr, flush=True)
    scraper = Scraper(target.metrics_urls, scrape_interval_s, scrape_settle_s)
    with scraper:
        records, clients = generate_load(target.url, workload, spec, quiet, target.route_urls,
                                         api_key)
    environment.update(finished_at=now_iso(), uptime_after=uptime())
    report = build_report(
        name=name, command=command, environment=environment, target=describe(target),
        workload=workload.describe(), load=spec.describe(), clients=clients,
        metrics=run_metrics(records, bounds, objectives),
        server=server_report(scraper, clients["start_at"]),
        records=records if include_records else None)
    if out is not None:
        write_outputs(report, records, out, name, make_plots)
    return report


def write_outputs(report: dict[str, Any], records: list, out: Path, name: str,
                  make_plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    if make_plots:
        report["plots"] = plots.run_plots(report, records, out, name)
    written = [write_json(report, out / f"{name}.json")]
    summary = out / f"{name}.md"
    write_text(markdown.render(report), summary)
    return written + [summary]


@contextmanager
def open_target(url: str | None, profile: str | None, metrics_urls: list[str],
                num_cpus: float = 2, baseline_threads: int = 1,
                ingress: str = DEFAULT_INGRESS) -> Iterator[Target]:
    """The server to measure: a running one at `url`, or one started here from `profile`."""
    if profile in (BASELINE, BASELINE_SERIALIZED):
        with running_baseline(threads=baseline_threads,
                              serialize=profile == BASELINE_SERIALIZED) as target:
            yield target
    elif profile:
        with running_app(profile, num_cpus=num_cpus, ingress=ingress) as target:
            yield target
    elif url:
        yield Target(url=url.rstrip("/"), kind="external", metrics_urls=list(metrics_urls))
    else:
        raise SystemExit("give --url of a running server or --profile to start one")


@contextmanager
def ray_for_clients(target: Target, address: str | None) -> Iterator[None]:
    """Connects this driver to the Ray cluster the client actors run on. Order: an existing
    connection, --address / RAY_ADDRESS, the cluster the target runs on, or else a small local
    Ray head started (and stopped) here."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or target.ray_address
    cluster = None
    try:
        if address is None:
            cluster = _connect_to_local_head()
        elif address == target.ray_address:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        else:
            # A cluster someone else started may lack this checkout: ship the bench package
            # with the job (Ray uploads local modules only at ray.init).
            ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                     runtime_env={"py_modules": [str(BENCH_DIR)], "excludes": ["results/"]})
            if not target.metrics_urls:
                target.metrics_urls = discover_metrics_urls()
        yield
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.stop()


def _connect_to_local_head(attempts: int = 3) -> LocalRay:
    """A one-CPU head for the clients. Retried on new ports: on a shared machine another
    process can take a port between picking it and binding it."""
    for attempt in range(attempts):
        cluster = LocalRay(num_cpus=1, env={"PYTHONPATH": str(REPO), **BENCH_RAY_ENV}).start()
        try:
            ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
            return cluster
        except (ConnectionError, RuntimeError):
            cluster.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def discover_metrics_urls() -> list[str]:
    """The Prometheus endpoint of every alive node of the connected cluster."""
    return [f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            for node in ray.nodes() if node.get("Alive") and node.get("MetricsExportPort")]
