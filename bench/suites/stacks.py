"""The app against the baseline stack on the mixed workload: 16 concurrent clients (what
batching and replica groups gain) and 1 client (what they cost at low load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app, running_baseline
from bench.load import LoadSpec
from bench.suites.common import Suite, fmt, overall, quantile, ratio
from bench.workloads import DEFAULT_MIX, build_workload

CLIENTS = (16, 1)


def run(command: str, out: Path | None, duration_s: float) -> dict[str, Any]:
    suite = Suite("stacks", command, out, duration_s)
    workload = build_workload("mixed", {"mix": DEFAULT_MIX, "output_len": "uniform:16,48"})
    specs = {c: LoadSpec(concurrency=c, duration_s=duration_s, warmup_s=15.0) for c in CLIENTS}
    with running_app("cpu") as app:
        for clients, spec in specs.items():
            suite.run(f"app-c{clients}", app, workload, spec)
    with running_baseline(threads=1) as baseline:
        for clients, spec in specs.items():
            suite.run(f"baseline-c{clients}", baseline, workload, spec)
    return suite.finish(*summarize(suite))


def _throughput(report: dict[str, Any]) -> float:
    return overall(report)["request_throughput"]


def _p95(metrics: dict[str, Any]) -> float | None:
    return (metrics.get("e2e") or {}).get("p95")


def stack_rows(runs: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| stack | clients | req/s | out tok/s | e2e p50 s | e2e p95 s | e2e p99 s | "
             "ttft p95 s | errors |", "|---|---:|" + "---:|" * 7]
    for label, report in runs.items():
        o = overall(report)
        cells = [fmt(quantile(report, metric, q)) for metric, q in
                 (("e2e", "p50"), ("e2e", "p95"), ("e2e", "p99"), ("ttft", "p95"))]
        lines.append(f"| {label.split('-')[0]} | {report['load']['concurrency']} | "
                     f"{o['request_throughput']:.2f} | {o['output_token_throughput']:.1f} | "
                     f"{' | '.join(cells)} | {o['requests']['errors']} |")
    return lines


def route_rows(app: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    lines = ["| per route at 16 clients | app req/s | baseline req/s | app e2e p95 s | "
             "baseline e2e p95 s |", "|---|---:|---:|---:|---:|"]
    app_routes, base_routes = app["metrics"]["routes"], baseline["metrics"]["routes"]
    for route in sorted(set(app_routes) & set(base_routes)):
        a, b = app_routes[route], base_routes[route]
        lines.append(f"| {route} | {a['request_throughput']:.2f} | "
                     f"{b['request_throughput']:.2f} | {fmt(_p95(a))} | {fmt(_p95(b))} |")
    return lines


def summarize(suite: Suite) -> tuple[dict[str, Any], str]:
    runs = suite.runs
    results: dict[str, Any] = {"runs": {
        label: {"request_throughput": _throughput(report),
                "e2e_p50": quantile(report, "e2e", "p50"),
                "e2e_p95": quantile(report, "e2e", "p95"),
                "ttft_p95": quantile(report, "ttft", "p95"),
                "errors": overall(report)["requests"]["errors"]}
        for label, report in runs.items()}}
    results["ratios"] = {
        "throughput_app_vs_baseline_c16": ratio(_throughput(runs["app-c16"]),
                                                _throughput(runs["baseline-c16"])),
        "e2e_p95_app_vs_baseline_c16": ratio(quantile(runs["app-c16"], "e2e", "p95"),
                                             quantile(runs["baseline-c16"], "e2e", "p95")),
        "throughput_app_vs_baseline_c1": ratio(_throughput(runs["app-c1"]),
                                               _throughput(runs["baseline-c1"])),
        "e2e_p50_app_vs_baseline_c1": ratio(quantile(runs["app-c1"], "e2e", "p50"),
                                            quantile(runs["baseline-c1"], "e2e", "p50")),
    }
    lines = stack_rows(runs) + [""] + route_rows(runs["app-c16"], runs["baseline-c16"])
    lines += ["", "| ratio (app / baseline) | value |", "|---|---:|"]
    lines += [f"| {name} | {fmt(value)} |" for name, value in results["ratios"].items()]
    return results, "\n".join(lines) + "\n"
