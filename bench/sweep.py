"""A concurrency or rate sweep: one run per load level against the same server, giving the
throughput-versus-latency curve and the highest load that still meets the SLO.

A level meets the SLO when at least `attainment` of its requests do (each within every bound
and successful), as in vLLM's goodput and GenAI-Perf's SLO attainment.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from bench import plots
from bench.app_launcher import Target
from bench.environment import machine, now_iso, uptime
from bench.load import LoadSpec
from bench.report import write_json, write_text
from bench.run import execute_run
from bench.workloads import Workload

SCHEMA = "mmserve-bench/sweep/1"


def levels(spec: LoadSpec, concurrencies: list[int] | None,
           rates: list[float] | None) -> list[tuple[str, LoadSpec]]:
    if concurrencies:
        return [(f"c{c}", dataclasses.replace(spec, concurrency=c, rate=None))
                for c in concurrencies]
    return [(f"r{r:g}", dataclasses.replace(spec, rate=r)) for r in rates or ()]


def point_of(label: str, spec: LoadSpec, report: dict[str, Any]) -> dict[str, Any]:
    metrics = report["metrics"]
    return {"label": label, "concurrency": spec.concurrency if spec.rate is None else None,
            "rate": spec.rate, "report": f"{report['name']}.json",
            "overall": metrics["overall"], "routes": metrics["routes"],
            "server_summary": report["server"].get("summary", {})}


def best_under_slo(points: list[dict[str, Any]], attainment: float) -> dict[str, Any] | None:
    """The point with the highest throughput whose SLO attainment is at least `attainment`."""
    meeting = [p for p in points if (p["overall"].get("goodput") or {}).get("fraction") is not None
               and p["overall"]["goodput"]["fraction"] >= attainment]
    if not meeting:
        return None
    best = max(meeting, key=lambda p: p["overall"]["request_throughput"])
    return {"label": best["label"], "concurrency": best["concurrency"], "rate": best["rate"],
            "request_throughput": best["overall"]["request_throughput"],
            "goodput": best["overall"]["goodput"]["requests_per_s"],
            "attainment": best["overall"]["goodput"]["fraction"]}


def run_sweep(target: Target, workload: Workload, spec: LoadSpec, bounds: dict[str, float],
              concurrencies: list[int] | None, rates: list[float] | None, *, name: str,
              command: str, out: Path, attainment: float = 0.9, **run_options: Any
              ) -> dict[str, Any]:
    environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
    points = []
    for label, level in levels(spec, concurrencies, rates):
        report = execute_run(target, workload, level, bounds, name=f"{name}-{label}",
                             command=command, out=out, **run_options)
        points.append(point_of(label, level, report))
    environment.update(finished_at=now_iso(), uptime_after=uptime())
    sweep = {"schema": SCHEMA, "name": name, "command": command, "environment": environment,
             "target": {"url": target.url, "kind": target.kind, "profile": target.profile},
             "workload": workload.describe(), "slo": bounds, "attainment": attainment,
             "points": points,
             "best_under_slo": best_under_slo(points, attainment) if bounds else None}
    curve = plots.sweep_curve(points, out / f"{name}-curve.png")
    sweep["plots"] = [curve.name] if curve else []
    write_json(sweep, out / f"{name}.json")
    write_text(render_sweep(sweep), out / f"{name}.md")
    return sweep


def _ms(values: dict[str, float], key: str) -> str:
    return f"{values[key] * 1000:.0f}" if values.get(key) is not None else "-"


def render_sweep(sweep: dict[str, Any]) -> str:
    lines = [f"# Sweep: {sweep['name']}", "", f"- command: `{sweep['command']}`",
             f"- before: `{sweep['environment']['uptime_before']}`; after: "
             f"`{sweep['environment']['uptime_after']}`", "",
             "| level | req/s | items/s | out tok/s | e2e p50 ms | e2e p95 ms | e2e p99 ms | "
             "ttft p95 ms | SLO met | errors |", "|---|" + "---:|" * 9]
    for p in sweep["points"]:
        o = p["overall"]
        e2e, ttft, good = o["e2e"] or {}, o["ttft"] or {}, o.get("goodput") or {}
        met = f"{100 * good['fraction']:.0f}%" if good.get("fraction") is not None else "-"
        lines.append(f"| {p['label']} | {o['request_throughput']:.2f} | "
                     f"{o['item_throughput']:.2f} | {o['output_token_throughput']:.1f} | "
                     f"{_ms(e2e, 'p50')} | {_ms(e2e, 'p95')} | {_ms(e2e, 'p99')} | "
                     f"{_ms(ttft, 'p95')} | {met} | {o['requests']['errors']} |")
    best = sweep.get("best_under_slo")
    if sweep["slo"]:
        slo = ", ".join(f"{k} <= {v:g}" for k, v in sweep["slo"].items())
        lines += ["", f"Highest load meeting the SLO ({slo}, for at least "
                  f"{100 * sweep['attainment']:.0f}% of requests): "
                  + (f"**{best['label']}**, {best['request_throughput']:.2f} req/s"
                     if best else "none of the levels")]
    return "\n".join(lines) + "\n"
