"""The local cluster's ingress on real Ray nodes: a Serve proxy on every node, each on its own
port on loopback, HAProxy in front of them, and traffic that keeps flowing through the front
when one node (its proxy and replica with it) is stopped.

The cluster is the smallest that shows it: a head with no CPU and one group of two nodes, and
an echo app instead of the models (tests/system/ingress/echo_app.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from cluster.front_haproxy import HEALTH_PATH
from cluster.local import ClusterSpec, LocalCluster, NodeGroup
from cluster.placement import proxy_health

SPEC = ClusterSpec(head=NodeGroup("head", 0),
                   workers=(NodeGroup("cpu", 1, {"cpu_node": 1}, nodes=2),),
                   object_store_memory=100 * 1024 * 1024)
ON_CPU_NODES = {"num_cpus": 0, "resources": {"cpu_node": 0.001}}


def echo_config(http_port: int) -> dict:
    return {"proxy_location": "EveryNode",
            "http_options": {"host": "127.0.0.1", "port": http_port},
            "applications": [{
                "name": "echo", "route_prefix": "/",
                "import_path": "tests.system.ingress.echo_app:app",
                "deployments": [{"name": "Echo", "num_replicas": 2,
                                 "ray_actor_options": ON_CPU_NODES}]}]}


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def cluster_serving(config_for: Callable[[int], dict],
                    spec: ClusterSpec = SPEC) -> Iterator[LocalCluster]:
    """The cluster of `spec` with the Serve config `config_for(head proxy port)` deployed, once
    every node's proxy answers; stopped after."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    local = LocalCluster(spec).start()
    try:
        ServeSubmissionClient(local.dashboard_url).deploy_applications(
            config_for(local.head_proxy_port))
        proxies = [f"http://127.0.0.1:{port}/" for port in local.proxy_ports]
        wait_for(lambda: all(answers(url) for url in proxies), 240, "every node's proxy")
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def cluster():
    with cluster_serving(echo_config) as local:
        yield local


def test_every_node_runs_a_proxy_on_its_own_loopback_port(cluster):
    assert len(set(cluster.proxy_ports)) == 3
    for port in cluster.proxy_ports:
        assert httpx.get(f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=5).status_code == 200
        assert "node" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()
    health = proxy_health([{"node": s.name, "port": s.port} for s in cluster.proxy_servers()])
    assert [(node, up) for node, _, up in health] == [
        ("head", True), ("cpu-1", True), ("cpu-2", True)]


def test_clients_reach_the_app_through_the_front_on_loopback(cluster):
    served_on = {httpx.get(cluster.ingress_url + "/", timeout=10).json()["node"]
                 for _ in range(10)}
    assert len(served_on) == 2  # two replicas, Serve spreads them: one on each node


def test_the_front_keeps_serving_when_a_node_and_its_proxy_are_stopped(cluster):
    lost = cluster.workers[1]
    lost_port = cluster.proxy_ports[2]
    lost.stop()
    assert not answers(f"http://127.0.0.1:{lost_port}{HEALTH_PATH}")
    # Serve notices the lost replica and starts another on the surviving node; until then a
    # request may still be routed to it. After that, every request answers.
    wait_for(lambda: all(answers(cluster.ingress_url + "/") for _ in range(10)), 120,
             "the front to serve from the surviving nodes")
    statuses = [httpx.get(cluster.ingress_url + "/", timeout=10).status_code
                for _ in range(30)]
    assert statuses == [200] * 30
