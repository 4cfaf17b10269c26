"""The capacity allocator on a live app: deployed with `capacity.enabled`, the app carries the
capacity policy; a speech burst gives the audio group a second replica from the pool's free
CPUs, its replicas report a measured service rate, the decisions show as ray_mmserve_capacity_*
metrics exported from Serve's controller, and once the load stops the replica goes back. The
shared app is restored after. (The vision group scales under Serve's own policy in
test_vision_autoscaling.py.)
"""

from __future__ import annotations

import copy
import re

import httpx
import pytest

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from deployments.replicas.serve_options import CAPACITY_POLICY
from tests.closed_loop_load import ClosedLoopLoad, transcription
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.media import speech_wav
from tests.system.cluster.serve_state import submission_client, wait_for

pytestmark = pytest.mark.integration
DOWNSCALE_DELAY_S = 5
# text, audio and vision replicas hold 1.5 of the 2 CPUs: a second audio replica fits
CAPACITY = {"enabled": True, "pool_cpus": 2, "reclaim_delay_s": 2,
            "downscale_delay_s": DOWNSCALE_DELAY_S}
GROUP, DEPLOYMENT = "audio", "SpeechTranscriber"
# Short clips at a 2 s objective: 8 clients queue past what one Whisper replica finishes in time
CLIENTS, TARGET_ONGOING_REQUESTS = 8, 2


def capacity_args() -> dict:
    args = copy.deepcopy(TEST_ARGS)
    args["capacity"] = dict(CAPACITY)
    args[GROUP]["autoscaling"] = {"min_replicas": 1, "max_replicas": 2,
                                  "target_ongoing_requests": TARGET_ONGOING_REQUESTS}
    args["slo"] = {"transcriptions": {"e2e_s": 2.0}}
    return args


def app(dashboard: str) -> dict:
    return submission_client(dashboard).get_serve_details()["applications"][APP_NAME]


def app_policy(dashboard: str) -> dict | None:
    """The application-level autoscaling_policy the controller holds for the app."""
    return (app(dashboard).get("deployed_app_config") or {}).get("autoscaling_policy")


def audio(dashboard: str) -> dict:
    return app(dashboard)["deployments"][DEPLOYMENT]


def running(dashboard: str) -> int:
    return sum(r["state"] == "RUNNING" for r in audio(dashboard)["replicas"])


def capacity_gauge(metrics_url: str, name: str, group: str) -> float | None:
    """The value of ray_mmserve_capacity_NAME for `group`, as Prometheus scrapes it."""
    pattern = re.compile(rf'^ray_mmserve_capacity_{name}\{{[^}}]*group="{group}"[^}}]*\}} (\S+)$',
                         re.MULTILINE)
    found = pattern.findall(httpx.get(metrics_url, timeout=10).text)
    return float(found[-1]) if found else None


def test_a_speech_burst_gains_an_audio_replica_from_the_pool_and_gives_it_back(
        ray_cluster, app_url):
    dashboard = ray_cluster.dashboard_url
    metrics_url = f"http://127.0.0.1:{ray_cluster.ports['metrics']}/metrics"
    deploy_config(dashboard, app_config(capacity_args(), None, ray_cluster.http_port,
                                        name=APP_NAME), 300)
    try:
        assert app_policy(dashboard)["policy_function"] == CAPACITY_POLICY
        wait_for(lambda: running(dashboard) == 1, 180, "one audio replica at rest")

        with ClosedLoopLoad(app_url, CLIENTS, transcription(speech_wav())) as load:
            wait_for(lambda: audio(dashboard)["target_num_replicas"] == 2, 30,
                     "the allocator to give audio a second replica")
            wait_for(lambda: running(dashboard) == 2, 180, "2 running audio replicas")
            wait_for(lambda: capacity_gauge(metrics_url, "rate_measured", GROUP) == 1, 60,
                     "audio's replicas to report their service rate")
            assert capacity_gauge(metrics_url, "replicas", GROUP) == 2
        assert load.failures == [], load.failures[:5]

        wait_for(lambda: audio(dashboard)["target_num_replicas"] == 1,
                 DOWNSCALE_DELAY_S + 30, "the allocator to take the replica back")
        assert capacity_gauge(metrics_url, "rate_measured", "text") == 0  # text reports none
    finally:
        deploy(ray_cluster)
        wait_for(lambda: not app_policy(dashboard) and len(audio(dashboard)["replicas"]) == 1,
                 180, "the shared app without the policy, one audio replica")
