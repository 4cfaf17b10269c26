"""Autoscaling: load on the vision group raises its replica count to its maximum; when the load
stops it falls back to its minimum, and no request fails while replicas are being removed."""

from __future__ import annotations

import threading

import httpx
import pytest

from cluster.placement import node_table
from tests.cluster.conftest import VISION_TEST_SETTINGS
from tests.cluster.serve_state import app_details, wait_for
from tests.media import b64, png_image

pytestmark = pytest.mark.integration
DEPLOYMENT = "ImageEmbedder"
HEAVY = 3 * VISION_TEST_SETTINGS["autoscaling"]["target_ongoing_requests"]


class EmbeddingLoad:
    """`concurrency` clients, each sending one image embedding after another until stopped."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url, self.concurrency = url, concurrency
        self.stopping = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                        for i in range(concurrency)]

    def __enter__(self) -> EmbeddingLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=180)

    def _client(self, index: int) -> None:
        body = {"model": "clip-vit-b-32-image", "input": b64(png_image((index * 20, 90, 60)))}
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self.stopping.is_set():
                try:
                    response = client.post("/v1/embeddings", json=body)
                    outcome = None if response.status_code == 200 else (
                        f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                with self.lock:
                    if outcome is None:
                        self.ok += 1
                    else:
                        self.failures.append(outcome)


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

    with EmbeddingLoad(mixed_app.url, HEAVY) as heavy:
        wait_for(lambda: running(dashboard) == high, 180, f"{high} running replicas under load")
        peak_nodes = {r["node_id"] for r in replicas(dashboard) if r["state"] == "RUNNING"}
        served_before_peak = heavy.ok
        wait_for(lambda: heavy.ok > served_before_peak + HEAVY, 120, "requests at the peak")
    assert heavy.failures == []
    nodes = node_table(dashboard)
    assert {nodes[node_id].group for node_id in peak_nodes} == {"inf2"}

    # Light load continues through the scale-down: every request must still succeed.
    with EmbeddingLoad(mixed_app.url, 1) as light:
        wait_for(lambda: len(replicas(dashboard)) == low and running(dashboard) == low, 180,
                 f"{DEPLOYMENT} back to {low} replica")
        served_after = light.ok
        wait_for(lambda: light.ok > served_after, 60, "a request after the scale-down")
    assert light.failures == []
    assert light.ok > 0
