"""The default (cpu) profile's vision autoscaling on a real cluster: concurrent image embeddings
raise ImageEmbedder to two replicas within seconds, and once the load stops it returns to one.

The vision group is redeployed with the profile's `autoscaling` (the queue policy, its windows)
through the builder, as `serve run cluster/profiles/cpu.yaml` does; only its downscale delay is
shortened, so the test waits seconds rather than half a minute. The shared app is restored after.
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from cluster.deploy import app_config, profile_path
from cluster.deploy import deploy as deploy_config
from deployments.replicas.serve_options import QUEUE_POLICY
from tests.closed_loop_load import ClosedLoopLoad
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.system.cluster.serve_state import submission_client, wait_for

pytestmark = pytest.mark.integration
DEPLOYMENT = "ImageEmbedder"
CLIENTS = 40  # past two replicas' worth at the profile's target_ongoing_requests (8)
DOWNSCALE_DELAY_S = 5  # the profile's is 30 s: the same policy, a shorter wait
DECIDES_WITHIN_S = 20  # Serve's default policy averages over 30 s before it would see the load


def profile_vision_autoscaling() -> dict:
    args = yaml.safe_load(profile_path("cpu").read_text())["applications"][0]["args"]
    autoscaling = dict(args["vision"]["autoscaling"], downscale_delay_s=DOWNSCALE_DELAY_S)
    assert autoscaling["policy"] == "queue" and autoscaling["max_replicas"] == 2
    return autoscaling


def vision(dashboard: str) -> dict:
    details = submission_client(dashboard).get_serve_details()
    return details["applications"][APP_NAME]["deployments"][DEPLOYMENT]


def running(dashboard: str) -> int:
    return sum(r["state"] == "RUNNING" for r in vision(dashboard)["replicas"])


def at_rest(dashboard: str, policy_function: str | None) -> bool:
    details = vision(dashboard)
    autoscaling = details["deployment_config"].get("autoscaling_config") or {}
    return (autoscaling.get("policy", {}).get("policy_function") == policy_function
            and len(details["replicas"]) == 1 and running(dashboard) == 1)


def test_cpu_profile_vision_reaches_two_replicas_under_load_and_one_when_idle(
        ray_cluster, app_url):
    dashboard = ray_cluster.dashboard_url
    args = copy.deepcopy(TEST_ARGS)
    args["vision"]["autoscaling"] = profile_vision_autoscaling()
    deploy_config(dashboard, app_config(args, None, ray_cluster.http_port, name=APP_NAME), 300)
    try:
        wait_for(lambda: at_rest(dashboard, QUEUE_POLICY), 180, "one vision replica at rest")

        with ClosedLoopLoad(app_url, CLIENTS) as load:
            started = time.monotonic()
            wait_for(lambda: vision(dashboard)["target_num_replicas"] == 2, DECIDES_WITHIN_S,
                     "the policy to want 2 replicas")
            decided_s = time.monotonic() - started
            wait_for(lambda: running(dashboard) == 2, 180, "2 running replicas")
            both_running_s = time.monotonic() - started
            served = load.ok
            wait_for(lambda: load.ok > served + CLIENTS, 120, "requests served by two replicas")
        assert load.failures == [], load.failures[:5]

        wait_for(lambda: vision(dashboard)["target_num_replicas"] == 1, 60,
                 "the policy to give the second replica back")
        released_s = time.monotonic() - load.stopped_at
        wait_for(lambda: len(vision(dashboard)["replicas"]) == 1, 120, "one vision replica")
        print(f"\nqueue policy: 2 wanted after {decided_s:.1f} s of load, both running after "
              f"{both_running_s:.1f} s; 1 wanted {released_s:.1f} s after the load stopped "
              f"(downscale_delay_s {DOWNSCALE_DELAY_S})")
        assert released_s >= DOWNSCALE_DELAY_S
    finally:
        deploy(ray_cluster)
        wait_for(lambda: at_rest(dashboard, None), 180, "the shared app's single vision replica")
