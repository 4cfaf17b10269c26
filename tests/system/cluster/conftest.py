"""One local heterogeneous cluster and one app for every test in this folder.

The cluster is cluster/local-cluster.yaml started as real Ray nodes on this machine (a head and
the gpu-h100, inf2 and cpu node groups, each advertising its resources); the app is the
mixed-local profile, with the vision group's autoscaling made quick enough to watch in a test.
Placement, per-group environment, autoscaling and pending-deployment tests all share them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cluster import group_env
from cluster.local import LocalCluster, load_spec
from tests.system.cluster.serve_state import deploy_and_wait, ray_connection

REPO = Path(__file__).resolve().parents[3]
PROFILE = REPO / "cluster" / "profiles" / "mixed-local.yaml"
# Serve's defaults react in tens of seconds; these make it react in about one.
FAST_SERVE_ENV = {
    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "0.5",
    "RAY_SERVE_SLOW_STARTUP_WARNING_S": "3",
    "RAY_SERVE_SLOW_STARTUP_WARNING_PERIOD_S": "3",
}
# The vision group scales 1 -> 2 (what the inf2 node's 2 neuron_cores hold) with small batches,
# so a dozen concurrent requests are enough load; the profile's rule holds: target = batch size.
VISION_BATCH = 4
VISION_TEST_SETTINGS = {
    "max_ongoing_requests": 2 * VISION_BATCH,
    "batching": {"max_batch_size": VISION_BATCH, "batch_wait_timeout_s": 0.05},
    "autoscaling": {"min_replicas": 1, "max_replicas": 2,
                    "target_ongoing_requests": VISION_BATCH, "upscale_delay_s": 1,
                    "downscale_delay_s": 4, "look_back_period_s": 2},
}


def mixed_local_test_config(http_port: int) -> dict:
    config = yaml.safe_load(PROFILE.read_text())
    config["http_options"]["port"] = http_port
    config["applications"][0]["args"]["vision"].update(copy.deepcopy(VISION_TEST_SETTINGS))
    return config


class MixedApp:
    """`url` is the cluster's ingress: HAProxy in front of every node's Serve proxy."""

    def __init__(self, cluster: LocalCluster, config: dict) -> None:
        self.cluster, self.config = cluster, config
        self.dashboard = cluster.dashboard_url
        self.url = cluster.ingress_url


@pytest.fixture(scope="package")
def local_cluster(model_dir: str):
    group_env.ensure("audio")  # cached after the first build (make group-envs)
    cluster = LocalCluster(load_spec(), env={"MMSERVE_MODEL_DIR": model_dir, **FAST_SERVE_ENV})
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
def mixed_app(local_cluster: LocalCluster):
    config = mixed_local_test_config(local_cluster.head_proxy_port)
    deploy_and_wait(local_cluster.dashboard_url, config)
    with ray_connection(local_cluster.address):
        yield MixedApp(local_cluster, config)
