"""The capacity allocator on a live app: deployed with `capacity.enabled`, the app carries the
capacity policy; a burst on one group (image embeddings, or speech) gives it a second replica
from the pool's free CPUs, its replicas report a measured service rate, the decisions show as
ray_mmserve_capacity_* metrics exported from Serve's controller, and once the load stops the
replica goes back. The shared app is restored after.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import httpx
import pytest

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from deployments.replicas.serve_options import CAPACITY_POLICY
from tests.closed_loop_load import ClosedLoopLoad, Send, image_embedding, transcription
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.media import speech_wav
from tests.system.cluster.serve_state import submission_client, wait_for

pytestmark = pytest.mark.integration
DOWNSCALE_DELAY_S = 5
# text, audio and vision replicas hold 1.5 of the 2 CPUs: a second one of any group fits
CAPACITY = {"enabled": True, "pool_cpus": 2, "reclaim_delay_s": 2,
            "downscale_delay_s": DOWNSCALE_DELAY_S}


@dataclass(frozen=True)
class Burst:
    group: str
    deployment: str
    clients: int
    target_ongoing_requests: int


# Vision: past two replicas' worth at 8 ongoing requests each. Speech: short clips at a 2 s
# objective, so that 8 clients queue past what one Whisper replica finishes in time.
BURSTS = [Burst("vision", "ImageEmbedder", 40, 8), Burst("audio", "SpeechTranscriber", 8, 2)]


def capacity_args(burst: Burst) -> dict:
    args = copy.deepcopy(TEST_ARGS)
    args["capacity"] = dict(CAPACITY)
    args[burst.group]["autoscaling"] = {"min_replicas": 1, "max_replicas": 2,
                                        "target_ongoing_requests": burst.target_ongoing_requests}
    if burst.group == "audio":
        args["slo"] = {"transcriptions": {"e2e_s": 2.0}}
    return args


def sender(burst: Burst) -> Send:
    return transcription(speech_wav()) if burst.group == "audio" else image_embedding


def app(dashboard: str) -> dict:
    return submission_client(dashboard).get_serve_details()["applications"][APP_NAME]


def app_policy(dashboard: str) -> dict | None:
    """The application-level autoscaling_policy the controller holds for the app."""
    return (app(dashboard).get("deployed_app_config") or {}).get("autoscaling_policy")


def group(dashboard: str, deployment: str) -> dict:
    return app(dashboard)["deployments"][deployment]


def running(dashboard: str, deployment: str) -> int:
    return sum(r["state"] == "RUNNING" for r in group(dashboard, deployment)["replicas"])


def capacity_gauge(metrics_url: str, name: str, group: str) -> float | None:
    """The value of ray_mmserve_capacity_NAME for `group`, as Prometheus scrapes it."""
    pattern = re.compile(rf'^ray_mmserve_capacity_{name}\{{[^}}]*group="{group}"[^}}]*\}} (\S+)$',
                         re.MULTILINE)
    found = pattern.findall(httpx.get(metrics_url, timeout=10).text)
    return float(found[-1]) if found else None


@pytest.mark.parametrize("burst", BURSTS, ids=[burst.group for burst in BURSTS])
def test_a_burst_gains_a_replica_from_the_pool_and_gives_it_back(ray_cluster, app_url, burst):
    dashboard, name = ray_cluster.dashboard_url, burst.deployment
    metrics_url = f"http://127.0.0.1:{ray_cluster.ports['metrics']}/metrics"
    deploy_config(dashboard, app_config(capacity_args(burst), None, ray_cluster.http_port,
                                        name=APP_NAME), 300)
    try:
        assert app_policy(dashboard)["policy_function"] == CAPACITY_POLICY
        wait_for(lambda: running(dashboard, name) == 1, 180, f"one {burst.group} replica at rest")

        with ClosedLoopLoad(app_url, burst.clients, sender(burst)) as load:
            wait_for(lambda: group(dashboard, name)["target_num_replicas"] == 2, 30,
                     f"the allocator to give {burst.group} a second replica")
            wait_for(lambda: running(dashboard, name) == 2, 180,
                     f"2 running {burst.group} replicas")
            wait_for(lambda: capacity_gauge(metrics_url, "rate_measured", burst.group) == 1, 60,
                     f"{burst.group}'s replicas to report their service rate")
            assert capacity_gauge(metrics_url, "replicas", burst.group) == 2
        assert load.failures == [], load.failures[:5]

        wait_for(lambda: group(dashboard, name)["target_num_replicas"] == 1,
                 DOWNSCALE_DELAY_S + 30, "the allocator to take the replica back")
        assert capacity_gauge(metrics_url, "rate_measured", "text") == 0  # text reports none
    finally:
        deploy(ray_cluster)
        wait_for(lambda: not app_policy(dashboard) and len(group(dashboard, name)["replicas"]) == 1,
                 180, "the shared app without the policy, one replica per group")
