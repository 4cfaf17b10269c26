"""Several tenants' loads on one app at once, each sent with its own key by its own client
actors, all starting at the same moment; one report per tenant (named `<run>-<tenant>`), with
that tenant's figures (bench/tenant_figures.py) and which ingress replicas counted its
requests. The keys go to the client actors in memory and are registered for redaction
(bench/redact.py): no report or file holds one.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.app_launcher import Target, describe
from bench.environment import machine, now_iso, uptime
from bench.load import Load, LoadSpec, generate_loads
from bench.metrics import run_metrics
from bench.prometheus import Sample, parse
from bench.redact import register_secret
from bench.report import build_report
from bench.run import write_outputs
from bench.server_view import Scraper, server_report
from bench.tenant_figures import TENANT_REQUESTS, requests_by_replica, tenant_figures
from bench.workloads import Workload


@dataclass
class TenantLoad:
    tenant: str
    workload: Workload
    spec: LoadSpec
    api_key: str = field(repr=False)


def execute_tenant_run(target: Target, loads: list[TenantLoad], *, name: str, command: str,
                       out: Path | None, on_start: Callable[[float], None] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """Runs the loads at once; returns {tenant: its report}, each with `tenant`: its figures
    and `ingress_replicas` (its admitted requests by ingress replica, from the metrics).
    `on_start`: told the loads' start (epoch seconds) once it is set."""
    for load in loads:
        register_secret(load.api_key)
    environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
    print(f"{name}: " + "; ".join(f"{load.tenant}: {load.workload.name} {load.spec.describe()}"
                                  for load in loads), file=sys.stderr, flush=True)
    before = scrape_tenant_requests(target.metrics_urls)
    scraper = Scraper(target.metrics_urls)
    with scraper:
        records, clients = generate_loads(
            target.url, [Load(load.workload, load.spec, load.api_key) for load in loads],
            routes=target.route_urls, on_start=on_start)
    after = scrape_tenant_requests(target.metrics_urls)
    environment.update(finished_at=now_iso(), uptime_after=uptime())
    server = server_report(scraper, clients["start_at"])
    reports = {}
    for load, tenant_records in zip(loads, records):
        measured = [r for r in tenant_records if not r.retry]
        report = build_report(
            name=f"{name}-{load.tenant}", command=command, environment=environment,
            target=describe(target), workload=load.workload.describe(),
            load=load.spec.describe(), clients=clients, metrics=run_metrics(measured, {}),
            server=server, records=None)
        report["tenant"] = {
            "name": load.tenant,
            **tenant_figures(tenant_records, clients["start_at"] + load.spec.warmup_s,
                             load.spec.duration_s),
            "ingress_replicas": requests_by_replica(before, after, load.tenant)}
        if out is not None:
            write_outputs(report, measured, out, report["name"])
        reports[load.tenant] = report
    return reports


def scrape_tenant_requests(urls: list[str]) -> list[Sample]:
    """ray_mmserve_tenant_requests_total from every metrics endpoint (none that fail)."""
    samples: list[Sample] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                samples += parse(response.read().decode(errors="replace"), (TENANT_REQUESTS,))
        except (urllib.error.URLError, OSError) as exc:
            print(f"metrics scrape of {url} failed: {exc}", file=sys.stderr)
    return samples
