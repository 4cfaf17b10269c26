"""The app's Grafana dashboard, written from code: `python -m cluster.dashboard` writes
cluster/grafana/mmserve.json (`--check` only says whether the committed file is current).

Rows follow a request's path: the front door (the ingress), the per-modality queues and batches,
the engines, the response cache, the SLOs, the pipeline's stages; then what each tenant used.
Every query reads the series Ray exports on its metrics port (`ray_` prefix, `_total` on
counters): the app's own (deployments/replicas/metrics.py, listed in docs/operations.md) and
Serve's replica counts.
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "grafana" / "mmserve.json"
APP = 'application=~"$application"'
WINDOW = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
# What Grafana puts in for the variables; the tests and the PNG script query Prometheus
# directly, so they substitute the same way (every application, a one-minute window).
DEFAULT_VARIABLES = {"application": ".*", "__rate_interval": "1m"}


@dataclass
class Target:
    expr: str
    legend: str


@dataclass
class Panel:
    title: str
    unit: str
    targets: list[Target]
    description: str = ""
    width: int = 8


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


def rate(metric: str, by: str, selector: str = "") -> str:
    labels = ", ".join(s for s in (APP, selector) if s)
    return f"sum by ({by}) (rate({metric}{{{labels}}}[{WINDOW}]))"


def quantiles(metric: str, by: str, qs: tuple[float, ...] = QUANTILES) -> list[Target]:
    """p50/p95/p99 of a histogram (seconds), one series per `by` value."""
    return [Target(f"histogram_quantile({q}, {rate(metric + '_bucket', by + ', le')})",
                   f"p{round(q * 100)} {{{{{by}}}}}") for q in qs]


def share(metric: str, by: str, good: str) -> str:
    """The share of a counter's rate whose labels match `good`."""
    return f"{rate(metric, by, good)} / {rate(metric, by)}"


def rows() -> list[Row]:
    return [
        Row("Front door (ingress)", [
            Panel("Requests by route and status", "reqps", [Target(
                rate("ray_mmserve_http_requests_total", "route, status"),
                "{{route}} {{status}}")],
                "HTTP requests answered by the ingress, per second."),
            Panel("Latency by route", "s", quantiles("ray_mmserve_http_request_seconds", "route"),
                  "End-to-end latency at the ingress (a stream: until its last event)."),
            Panel("Rejections by reason", "reqps", [Target(
                rate("ray_mmserve_rejected_requests_total", "route, reason"),
                "{{route}} {{reason}}")],
                "Requests answered with an error, by route and reason (the error's type), "
                "per second."),
            Panel("In flight by deployment", "short", [Target(
                f"sum by (deployment) (ray_serve_replica_processing_queries{{{APP}}})",
                "{{deployment}}")],
                "Requests inside each deployment's replicas (Ingress: open HTTP requests)."),
        ]),
        Row("Queues and batches (per modality)", [
            Panel("Queue wait", "s", quantiles("ray_mmserve_queue_wait_seconds", "method",
                                               (0.5, 0.95)),
                  "Time a request waited in its replica's batcher while the model was busy."),
            Panel("Batch wait", "s", quantiles("ray_mmserve_batch_wait_seconds", "method",
                                               (0.5, 0.95)),
                  "Time a request waited for its batch to close while the model was free "
                  "(the batch window)."),
            Panel("Model time per request", "s", quantiles(
                "ray_mmserve_model_call_seconds", "method", (0.5, 0.95)),
                "Length of the model call each request rode in."),
            Panel("Batch size", "short", [
                Target(f"{rate('ray_mmserve_batch_items_total', 'method')} / "
                       f"{rate('ray_mmserve_model_calls_total', 'method')}", "mean {{method}}"),
                *quantiles("ray_mmserve_batch_size", "method", (0.95,))],
                "Requests per model call: the exact mean (items / calls) and the p95."),
            Panel("Queue length", "short", [
                Target(f"sum by (method) (max_over_time(ray_mmserve_queue_length{{{APP}}}"
                       f"[$__rate_interval]))", "{{method}}"),
                Target(f"sum by (deployment) (ray_serve_deployment_queued_queries{{{APP}}})",
                       "router {{deployment}}")],
                "Requests waiting in each replica's batch queue (the most in the interval: "
                "a queue drains between Ray's exports), and in Serve's routers."),
            Panel("Replicas: target and running", "short", [
                Target(f"max by (deployment) (ray_serve_autoscaling_target_replicas{{{APP}}})",
                       "target {{deployment}}"),
                # Serve sets the health gauge at health checks only: the last value in the
                # window keeps the line from breaking between two.
                Target(f"sum by (deployment) (last_over_time("
                       f"ray_serve_deployment_replica_healthy{{{APP}}}[{WINDOW}]))",
                       "running {{deployment}}")],
                "What the autoscaler aims for, and the replicas passing their health check."),
        ]),
        Row("Engines", [
            Panel("Model busy share by replica", "percentunit", [Target(
                rate("ray_mmserve_model_seconds_total", "deployment, replica"),
                "{{deployment}} {{replica}}")],
                "Share of the time each replica's model thread was computing (1 = never idle)."),
            Panel("Tokens per second", "suffix: tok/s", [Target(
                rate("ray_mmserve_tokens_total", "kind"), "{{kind}}")],
                "Prompt tokens read and completion tokens generated."),
            Panel("Time to first token", "s", quantiles(
                "ray_mmserve_time_to_first_token_seconds", "route"),
                "Streams: from the request's arrival at the ingress to its first token."),
            Panel("Inter-token latency", "s", quantiles(
                "ray_mmserve_inter_token_seconds", "route"),
                "Streams: time between two tokens sent."),
        ]),
        Row("Response cache", [
            Panel("Hit ratio by route", "percentunit", [Target(
                share("ray_mmserve_cache_lookups_total", "route", 'result="hit"'), "{{route}}")],
                "Hits among all lookups (per input for embeddings)."),
            Panel("Lookups by result", "reqps", [Target(
                rate("ray_mmserve_cache_lookups_total", "route, result"),
                "{{route}} {{result}}")],
                "hit, miss, partial (some inputs hit), bypass (not cacheable, or no-cache)."),
            Panel("Store errors", "reqps", [
                Target(rate("ray_mmserve_cache_errors_total", "route"), "{{route}}"),
                Target(rate("ray_mmserve_cache_invalid_entries_total", "route"),
                       "{{route}} invalid")],
                "Cache store failures; each request computed its answer instead. Invalid: "
                "entries that failed their signature check (planted or altered in Redis, or "
                "another secret), each a miss."),
        ]),
        Row("SLOs", [
            Panel("Goodput share by route", "percentunit", [Target(
                share("ray_mmserve_slo_requests_total", "route", 'met="true"'), "{{route}}")],
                "Share of answers within their route's SLO (config slo; streams: "
                "time to first token); 4xx but 429 are not counted.", width=12),
            Panel("Requests within and past SLO", "reqps", [Target(
                rate("ray_mmserve_slo_requests_total", "route, met"), "{{route}} met={{met}}")],
                "Requests per second, by whether they met their SLO.", width=12),
        ]),
        Row("Pipeline stages", [
            Panel("Stage time", "s", quantiles("ray_mmserve_pipeline_stage_seconds", "stage",
                                               (0.5, 0.95)),
                  "Wall time of each /v1/pipeline stage (audio and image run side by side).",
                  width=12),
            Panel("Stages per second", "reqps", [Target(
                rate("ray_mmserve_pipeline_stage_seconds_count", "stage"), "{{stage}}")],
                "Pipeline stages run, per second.", width=12),
        ]),
        Row("Tenants", [
            Panel("Requests by tenant", "reqps", [Target(
                rate("ray_mmserve_tenant_requests_total", "tenant"), "{{tenant}}")],
                "Requests admitted per second, by tenant (the anonymous API: anonymous)."),
            Panel("Tokens per second by tenant", "suffix: tok/s", [Target(
                rate("ray_mmserve_tenant_tokens_total", "tenant, kind"), "{{tenant}} {{kind}}")],
                "Prompt and completion tokens the tenant's requests used."),
            Panel("Model-seconds by tenant and group", "short", [Target(
                rate("ray_mmserve_tenant_model_seconds_total", "tenant, group"),
                "{{tenant}} {{group}}")],
                "Seconds of each group's model time the tenant's calls rode in, per second "
                "(1 = one model busy full time; a batch counts for each of its rows)."),
        ]),
    ]


DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    return {
        "id": panel_id, "type": "timeseries", "title": panel.title,
        "description": panel.description, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "min": 0,
                                     "custom": {"lineWidth": 1, "fillOpacity": 0,
                                                "showPoints": "never", "spanNulls": True}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr,
                     "legendFormat": t.legend, "range": True}
                    for i, t in enumerate(panel.targets)],
    }


def _variables() -> list[dict]:
    return [
        {"name": "datasource", "label": "Prometheus", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
         "options": []},
        {"name": "application", "label": "Serve application", "type": "query",
         "datasource": DATASOURCE, "definition": "label_values(ray_mmserve_http_requests_total, "
         "application)", "query": {"query": "label_values(ray_mmserve_http_requests_total, "
                                            "application)", "refId": "application"},
         "includeAll": True, "allValue": ".*", "multi": True, "current": {}, "hide": 0,
         "refresh": 2, "regex": "", "sort": 1, "options": []},
    ]


def dashboard() -> dict:
    panels, panel_id, y = [], 1, 0
    for row in rows():
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "title": "mmserve", "uid": "mmserve", "description": "The multimodal Ray Serve app, "
        "along a request's path (generated by cluster/dashboard.py).",
        "tags": ["ray", "serve", "mmserve"], "timezone": "browser", "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": _variables()}, "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def panel_targets(board: dict) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of a dashboard's panels, rows skipped."""
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row"
            for t in p["targets"]]


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """The expr as Grafana sends it: each $name and ${name} replaced, longest name first."""
    for name, value in sorted({**DEFAULT_VARIABLES, **(variables or {})}.items(),
                              key=lambda item: -len(item[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from what this module writes")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m cluster.dashboard", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
