"""A worker node SIGKILLed under load (its raylet, its workers, its Serve proxy, all at once):
no request answers 500 or any 5xx but 503, every 503 says when to retry, and the front serves
again from the surviving nodes. Each of the two cpu nodes holds a front and a backend replica
(tests/system/ingress/node_loss_app.py), so the kill cuts requests at every tier: held by the
dead proxy (HAProxy), by the dead front replica (a live proxy), by the dead backend replica (a
live front, which sends the call once more)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from tests.system.ingress.test_every_node_ingress import (
    ON_CPU_NODES,
    answers,
    cluster_serving,
    wait_for,
)

CLIENTS = 4
LOAD_BEFORE_KILL_S = 3
LOAD_AFTER_KILL_S = 15


def node_loss_config(http_port: int) -> dict:
    placed = {"num_replicas": 2, "ray_actor_options": ON_CPU_NODES}
    return {"proxy_location": "EveryNode",
            "http_options": {"host": "127.0.0.1", "port": http_port},
            "applications": [{
                "name": "nodeloss", "route_prefix": "/",
                "import_path": "tests.system.ingress.node_loss_app:app",
                "deployments": [{"name": "Front", **placed}, {"name": "Backend", **placed}]}]}


@pytest.fixture(scope="module")
def cluster():
    with cluster_serving(node_loss_config) as local:
        yield local


class Load:
    """Clients sending requests back to back through the front; every answer is kept."""

    def __init__(self, url: str) -> None:
        self.url, self.stopping = url, threading.Event()
        self.answers: list[tuple[float, int, httpx.Headers | None]] = []
        self.failures: list[str] = []  # requests with no HTTP answer: what the client saw
        self.threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get(self.url)
                    self.answers.append((time.monotonic(), response.status_code,
                                         response.headers))
                except httpx.HTTPError as error:  # no answer at all: kept as status 0
                    self.answers.append((time.monotonic(), 0, None))
                    self.failures.append(repr(error))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()


def sigkill_node(node) -> None:
    """SIGKILL to exactly the node's process group: `ray start`, its raylet and workers."""
    os.killpg(node.process.pid, signal.SIGKILL)
    node.process.wait()


def test_a_node_killed_under_load_gives_only_200s_and_503s_with_retry_after(cluster):
    wait_for(lambda: len({httpx.get(cluster.ingress_url + "/", timeout=10).json()["node"]
                          for _ in range(8)}) == 2, 60, "both backend replicas to serve")
    with Load(cluster.ingress_url + "/") as load:
        time.sleep(LOAD_BEFORE_KILL_S)
        killed_at = time.monotonic()
        sigkill_node(cluster.workers[1])
        time.sleep(LOAD_AFTER_KILL_S)
    statuses = Counter(status for _, status, _ in load.answers)
    print(f"answers under node loss: {dict(statuses)}; no answer: {load.failures}")
    assert set(statuses) <= {200, 503}, statuses
    assert all(headers.get("retry-after") for _, status, headers in load.answers
               if status == 503)
    assert any(at > killed_at and status == 200 for at, status, _ in load.answers)
    wait_for(lambda: all(answers(cluster.ingress_url + "/") for _ in range(10)), 60,
             "the front to serve from the surviving nodes")
