"""The committed Grafana dashboard is what cluster/dashboard.py writes, is importable as it is
(a Prometheus datasource variable, units, no overlapping panels), and queries only metric names
the app defines (deployments/replicas/metrics.py) or Ray Serve exports; docs/operations.md
lists them all.
"""

from __future__ import annotations

import json
import re

from cluster.dashboard import OUT, dashboard, main, panel_targets, render, substitute
from tests.conftest import REPO

METRICS_SOURCE = REPO / "deployments" / "replicas" / "metrics.py"
OPERATIONS = REPO / "docs" / "operations.md"
# Ray Serve's own series the dashboard reads (names as Ray 2.60 exports them).
SERVE_SERIES = {"ray_serve_replica_processing_queries", "ray_serve_deployment_queued_queries",
                "ray_serve_autoscaling_target_replicas", "ray_serve_deployment_replica_healthy"}


def app_metrics() -> dict[str, str]:
    """Each app metric's exported name (ray_ prefix) and kind, from replicas/metrics.py."""
    found = re.findall(r'\b(Counter|Histogram|Gauge)\(\s*"(mmserve_\w+)"',
                       METRICS_SOURCE.read_text())
    return {"ray_" + name: kind for kind, name in found}


def exported_names(name: str, kind: str) -> set[str]:
    return {"Counter": {name + "_total"}, "Gauge": {name},
            "Histogram": {name + "_bucket", name + "_count", name + "_sum"}}[kind]


def test_the_committed_dashboard_is_what_the_generator_writes():
    assert OUT.read_text() == render(), "stale: run python -m cluster.dashboard"
    assert main(["--check"]) == 0


def test_it_reads_a_prometheus_datasource_variable_with_units_and_no_overlaps():
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert grid["x"] + grid["w"] <= 24 and not cells & taken, panel["title"]
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["fieldConfig"]["defaults"]["unit"] in (
            "s", "reqps", "percentunit", "short", "suffix: tok/s"), panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == [
        "Front door (ingress)", "Queues and batches (per modality)", "Engines",
        "Response cache", "SLOs", "Pipeline stages", "Tenants"]


def test_every_queried_series_is_defined_and_every_app_metric_is_documented():
    defined = set(SERVE_SERIES)
    for name, kind in app_metrics().items():
        defined |= exported_names(name, kind)
    used = {name for _, expr in panel_targets(dashboard())
            for name in re.findall(r"\bray_\w+", expr)}
    assert used <= defined, f"queried but not exported: {sorted(used - defined)}"
    docs = OPERATIONS.read_text()
    undocumented = [name for name in app_metrics() if f"`{name}" not in docs]
    assert not undocumented, f"not in docs/operations.md: {undocumented}"


def test_variables_are_substituted_as_grafana_does():
    expr = 'rate(x{application=~"$application"}[$__rate_interval]) ${datasource}'
    assert substitute(expr, {"datasource": "P"}) == 'rate(x{application=~".*"}[1m]) P'
    assert substitute(expr, {"application": "app", "__rate_interval": "5m"}).startswith(
        'rate(x{application=~"app"}[5m])')
    assert json.loads(render())["uid"] == "mmserve"


def test_the_tenants_row_shows_requests_tokens_and_model_seconds_by_tenant():
    board = dashboard()
    row = next(i for i, p in enumerate(board["panels"]) if p["title"] == "Tenants")
    panels = board["panels"][row + 1:]
    assert [p["title"] for p in panels] == [
        "Requests by tenant", "Tokens per second by tenant", "Model-seconds by tenant and group"]
    exprs = [p["targets"][0]["expr"] for p in panels]
    assert exprs[0].startswith("sum by (tenant) (rate(ray_mmserve_tenant_requests_total{")
    assert exprs[1].startswith("sum by (tenant, kind) (rate(ray_mmserve_tenant_tokens_total{")
    assert exprs[2].startswith(
        "sum by (tenant, group) (rate(ray_mmserve_tenant_model_seconds_total{")
    assert all('application=~"$application"' in expr for expr in exprs)
