"""PNG plots of a run (latency CDFs, pipeline stages, server batch sizes and replicas over time)
and of a sweep (throughput versus latency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.records import RequestRecord  # noqa: E402


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def latency_cdf(records: list[RequestRecord], path: Path) -> Path | None:
    measured = [r for r in records if not r.warmup and r.ok]
    if not measured:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for route in sorted({r.route for r in measured}):
        for label, values, style in (
                ("e2e", [r.e2e() for r in measured if r.route == route], "-"),
                ("ttft", [r.ttft() for r in measured if r.route == route], "--")):
            values = np.sort([v for v in values if v is not None])
            if values.size:
                axis.plot(values * 1000, np.arange(1, values.size + 1) / values.size, style,
                          label=f"{route} {label}")
    axis.set(xlabel="latency (ms)", ylabel="fraction of requests", title="Latency CDF",
             xscale="log")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def pipeline_stages(stages: dict[str, Any], path: Path) -> Path | None:
    names = [n for n in ("audio_s", "image_s", "llm_ttft_s", "llm_s", "total_s") if stages.get(n)]
    if not names:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    x = np.arange(len(names))
    for offset, quantile in ((-0.2, "p50"), (0.2, "p95")):
        axis.bar(x + offset, [stages[n][quantile] * 1000 for n in names], 0.4, label=quantile)
    axis.set_xticks(x, [n.removesuffix("_s") for n in names])
    axis.set(ylabel="ms (server timings)",
             title="Pipeline stages (audio and image run side by side)")
    axis.legend()
    axis.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)


def _plot_keys(axis, series: list[dict[str, Any]], field: str, title: str) -> bool:
    keys = sorted({k for point in series for k in point.get(field, {})})
    for key in keys:
        points = [(p["t"], p[field][key]) for p in series if key in p.get(field, {})]
        if points:
            axis.plot(*zip(*points), marker=".", label=key)
    axis.set(title=title, xlabel="seconds since the load started")
    axis.grid(True, alpha=0.3)
    if keys:
        axis.legend(fontsize=7)
    return bool(keys)


def server_over_time(server: dict[str, Any], path: Path) -> Path | None:
    series = server.get("series") or []
    if not server.get("available") or not series:
        return None
    figure, axes = plt.subplots(4, 1, figsize=(8, 11), sharex=True)
    _plot_keys(axes[0], series, "batch_size", "Mean batch size (requests per model call)")
    _plot_keys(axes[1], series, "replicas", "Replicas")
    _plot_keys(axes[2], series, "ongoing", "Requests inside replicas")
    _plot_keys(axes[3], series, "queued", "Requests queued in routers")
    return _save(figure, path)


def sweep_curve(points: list[dict[str, Any]], path: Path) -> Path | None:
    usable = [p for p in points if p["overall"]["e2e"]]
    if not usable:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    throughput = [p["overall"]["request_throughput"] for p in usable]
    for quantile, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
        axis.plot(throughput, [p["overall"]["e2e"][quantile] * 1000 for p in usable], style,
                  label=f"e2e {quantile}")
    if all(p["overall"]["ttft"] for p in usable):
        axis.plot(throughput, [p["overall"]["ttft"]["p95"] * 1000 for p in usable], "x-.",
                  label="ttft p95")
    for p, x in zip(usable, throughput):
        axis.annotate(p["label"], (x, p["overall"]["e2e"]["p50"] * 1000), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    axis.set(xlabel="achieved throughput (req/s)", ylabel="latency (ms)",
             title="Throughput vs latency", yscale="log")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def run_plots(report: dict[str, Any], records: list[RequestRecord], out: Path,
              stem: str) -> list[str]:
    made = [latency_cdf(records, out / f"{stem}-latency-cdf.png"),
            pipeline_stages(report["metrics"]["overall"].get("stages") or {},
                            out / f"{stem}-pipeline-stages.png"),
            server_over_time(report["server"], out / f"{stem}-server.png")]
    return [path.name for path in made if path is not None]
