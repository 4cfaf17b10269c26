"""Autoscaling: load on the vision group raises its replica count to its maximum; when the load
stops it falls back to its minimum, and no request fails while replicas are being removed."""

from __future__ import annotations

import pytest

from cluster.placement import node_table
from tests.closed_loop_load import ClosedLoopLoad
from tests.system.cluster.conftest import VISION_TEST_SETTINGS
from tests.system.cluster.serve_state import app_details, wait_for

pytestmark = pytest.mark.integration
DEPLOYMENT = "ImageEmbedder"
HEAVY = 3 * VISION_TEST_SETTINGS["autoscaling"]["target_ongoing_requests"]


def replicas(dashboard: str) -> list[dict]:
    return app_details(dashboard)["deployments"][DEPLOYMENT]["replicas"]


def running(dashboard: str) -> int:
    return sum(r["state"] == "RUNNING" for r in replicas(dashboard))


def test_vision_scales_to_max_under_load_and_back_to_min_without_failures(mixed_app):
    dashboard = mixed_app.dashboard
    low = VISION_TEST_SETTINGS["autoscaling"]["min_replicas"]
    high = VISION_TEST_SETTINGS["autoscaling"]["max_replicas"]
    wait_for(lambda: running(dashboard) == low and len(replicas(dashboard)) == low, 120,
             f"{DEPLOYMENT} to rest at {low} replica")

    with ClosedLoopLoad(mixed_app.url, HEAVY) as heavy:
        wait_for(lambda: running(dashboard) == high, 180, f"{high} running replicas under load")
        peak_nodes = {r["node_id"] for r in replicas(dashboard) if r["state"] == "RUNNING"}
        served_before_peak = heavy.ok
        wait_for(lambda: heavy.ok > served_before_peak + HEAVY, 120, "requests at the peak")
    assert heavy.failures == []
    nodes = node_table(dashboard)
    assert {nodes[node_id].group for node_id in peak_nodes} == {"inf2"}

    # Light load continues through the scale-down: every request must still succeed.
    with ClosedLoopLoad(mixed_app.url, 1) as light:
        wait_for(lambda: len(replicas(dashboard)) == low and running(dashboard) == low, 180,
                 f"{DEPLOYMENT} back to {low} replica")
        served_after = light.ok
        wait_for(lambda: light.ok > served_after, 60, "a request after the scale-down")
    assert light.failures == []
    assert light.ok > 0
