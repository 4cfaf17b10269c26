"""The head SIGKILLed under load (its GCS, raylet, dashboard, the Serve controller and the head's
proxy, all at once) on a cluster whose GCS keeps its state in Redis (cluster/gcs_redis.py):
requests through a worker node's proxy keep answering while the head is down, and once the
head is back on the same ports the app is managed again with nothing lost: the same replicas
serve, a redeploy of a changed user_config reaches them, a killed replica is replaced."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace

import httpx
import pytest

from cluster.gcs_redis import GcsRedisSpec
from tests.system.ingress.test_every_node_ingress import (
    SPEC,
    cluster_serving,
    echo_config,
    wait_for,
)

# Long enough to see the worker nodes ride out the head's absence; the nodes' reconnect
# timeout covers it, the head's restart and the controller's recovery with room to spare.
HEAD_DOWN_S = 25
HEAD_LOSS_SPEC = replace(SPEC, gcs_redis=GcsRedisSpec(reconnect_timeout_s=240))
REQUEST_INTERVAL_S = 0.1


def versioned_echo_config(version: str):
    def config_for(http_port: int) -> dict:
        config = echo_config(http_port)
        config["applications"][0]["deployments"][0]["user_config"] = {"version": version}
        return config
    return config_for


@pytest.fixture(scope="module")
def cluster():
    with cluster_serving(versioned_echo_config("1"), HEAD_LOSS_SPEC) as local:
        yield local


class SteadyLoad:
    """One client sending a request every REQUEST_INTERVAL_S; every answer is kept with its
    time (status 0: no HTTP answer at all)."""

    def __init__(self, url: str) -> None:
        self.url, self.stopping = url, threading.Event()
        self.answers: list[tuple[float, int, str]] = []
        self.thread = threading.Thread(target=self._client)

    def _client(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.wait(REQUEST_INTERVAL_S):
                try:
                    response = client.get(self.url)
                    self.answers.append((time.monotonic(), response.status_code,
                                         response.text[:200]))
                except httpx.HTTPError as error:
                    self.answers.append((time.monotonic(), 0, repr(error)))

    def between(self, start: float, end: float) -> list[tuple[float, int, str]]:
        return [answer for answer in self.answers if start <= answer[0] < end]

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()


def echo_replicas(dashboard_url: str) -> list[dict]:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    details = ServeSubmissionClient(dashboard_url).get_serve_details()
    return details["applications"]["echo"]["deployments"]["Echo"]["replicas"]


def app_status(dashboard_url: str) -> str | None:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    try:
        details = ServeSubmissionClient(dashboard_url).get_serve_details()
        return details["applications"]["echo"]["status"]
    except Exception:  # the dashboard or the controller not back yet
        return None


def deployed(dashboard_url: str, config: dict) -> bool:
    """A deploy the restarted head accepts; False while its dashboard or controller is not
    back yet."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    try:
        ServeSubmissionClient(dashboard_url).deploy_applications(config)
        return True
    except Exception:
        return False


def versions_served(url: str, count: int = 10) -> set[str | None]:
    return {httpx.get(url, timeout=10).json()["version"] for _ in range(count)}


def test_worker_ingress_serves_through_head_loss_and_the_app_is_managed_after(cluster):
    worker_proxy = f"http://127.0.0.1:{cluster.proxy_ports[1]}/"
    # A worker node's proxy prefers the replica on its own node: the other one is checked
    # through the controller instead.
    wait_for(lambda: _running(cluster.dashboard_url) == 2
             and versions_served(worker_proxy) == {"1"}, 60, "both replicas to serve")
    replicas_before = {r["replica_id"] for r in echo_replicas(cluster.dashboard_url)}

    with SteadyLoad(worker_proxy) as load:
        time.sleep(2)
        killed_at = time.monotonic()
        cluster.kill_head()
        time.sleep(HEAD_DOWN_S)
        restarted_at = time.monotonic()
        cluster.restart_head()
        head_up_at = time.monotonic()
        wait_for(lambda: deployed(cluster.dashboard_url,
                                  versioned_echo_config("2")(cluster.head_proxy_port)),
                 240, "the restarted head to accept a deploy")
        wait_for(lambda: app_status(cluster.dashboard_url) == "RUNNING"
                 and versions_served(worker_proxy) == {"2"}, 240,
                 "the redeploy to reach every replica")
        managed_at = time.monotonic()

    down = load.between(killed_at, restarted_at)
    recovering = load.between(restarted_at, managed_at)
    print(f"head down {restarted_at - killed_at:.0f} s: {len(down)} requests through the "
          f"worker's proxy; head back in {head_up_at - restarted_at:.0f} s; a deploy reached "
          f"the replicas {managed_at - restarted_at:.0f} s after the restart began, "
          f"{len(recovering)} requests meanwhile")
    failed = [answer for answer in load.answers if answer[1] != 200]
    assert not failed, failed[:5]
    assert len(down) > HEAD_DOWN_S  # the load ran throughout the outage
    replicas_after = echo_replicas(cluster.dashboard_url)
    assert {r["replica_id"] for r in replicas_after} == replicas_before  # the same replicas

    victim = replicas_after[0]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_for(lambda: _replaced(cluster.dashboard_url, victim["replica_id"]), 180,
             "the killed replica to be replaced")
    assert versions_served(worker_proxy) == {"2"}  # the new replica has the new user_config


def _running_ids(dashboard_url: str) -> set[str]:
    try:
        replicas = echo_replicas(dashboard_url)
    except Exception:  # the controller not back yet
        return set()
    return {r["replica_id"] for r in replicas if r["state"] == "RUNNING"}


def _running(dashboard_url: str) -> int:
    return len(_running_ids(dashboard_url))


def _replaced(dashboard_url: str, victim: str) -> bool:
    running = _running_ids(dashboard_url)
    return len(running) == 2 and victim not in running
