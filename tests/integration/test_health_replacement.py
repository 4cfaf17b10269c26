"""Health checks that see a stuck replica: a model thread held by one call past
model_call_timeout_s, or a blocked event loop, fails the check and Serve replaces the replica.

Ray 2.60 runs a deployment's own check_health on the replica's user-code event loop (the one
requests run on; RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD is on by default), so a blocked
loop never answers it and the controller counts a timeout per health_check_timeout_s. The
integration tests wedge a real replica from the outside, through the replica actor's
internals, with no hook in the serving code: `__ray_call__` runs a function in its process.
"""

from __future__ import annotations

import time

import pytest

from deployments.core.config import Resources, TextSettings
from deployments.core.generation import SamplingParams
from deployments.replicas.serve_options import deployment_options
from tests.unit.test_health import _wait_for

HEALTH_APP = "mmserve-health"
PROBE = "StuckProbe"
STUCK_S = 60  # long past every limit below; bounded, so nothing is left stuck for good
REPLACED_WITHIN_S = 150
GREEDY = SamplingParams(max_tokens=4, temperature=0)
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def probe(app_url, model_dir):
    """A one-deployment app with short health periods (no CPU reserved, so it fits beside the
    shared app): a TextGenerator to wedge."""
    from ray import serve

    from deployments.replicas.text import TextGenerator

    settings = TextSettings(health_check_period_s=1, health_check_timeout_s=3,
                            model_call_timeout_s=5, resources=Resources(num_cpus=0))
    options = {**deployment_options(settings, PROBE), "graceful_shutdown_timeout_s": 2}
    app = TextGenerator.options(**options).bind(
        settings.model_dump(exclude={"batching"}), model_dir)
    handle = serve.run(app, name=HEALTH_APP, route_prefix=None)
    yield handle
    serve.delete(HEALTH_APP)


@pytest.mark.integration
def test_a_replica_whose_model_thread_is_stuck_is_replaced(probe, ray_cluster):
    import ray

    before = _serving_replica(probe, ray_cluster)
    replica = ray.get_actor(before["actor_name"], namespace="serve")
    ray.get(replica.__ray_call__.remote(_stick_model_thread, STUCK_S))
    _wait_for(lambda: _check_fails(replica), 30)  # past model_call_timeout_s
    after = _replaced(before, probe, ray_cluster)
    assert after["pid"] != before["pid"]


@pytest.mark.integration
def test_a_replica_whose_event_loop_is_blocked_is_replaced(probe, ray_cluster):
    import ray
    from ray.exceptions import GetTimeoutError

    before = _serving_replica(probe, ray_cluster)
    replica = ray.get_actor(before["actor_name"], namespace="serve")
    ray.get(replica.__ray_call__.remote(_block_user_loop, STUCK_S))
    with pytest.raises(GetTimeoutError):  # the check runs on the blocked loop: no answer
        ray.get(replica.check_health.remote(), timeout=5)
    after = _replaced(before, probe, ray_cluster)
    assert after["pid"] != before["pid"]


def _user_object(replica_actor):
    """The TextGenerator inside a Serve replica actor (Ray 2.60's internals)."""
    return replica_actor._replica_impl._user_callable_wrapper._callable


def _stick_model_thread(replica_actor, seconds: float) -> None:
    _user_object(replica_actor)._model_thread.submit(time.sleep, seconds)


def _block_user_loop(replica_actor, seconds: float) -> None:
    loop = replica_actor._replica_impl._user_callable_wrapper.event_loop
    loop.call_soon_threadsafe(time.sleep, seconds)


def _check_fails(replica) -> bool:
    import ray
    from ray.exceptions import RayTaskError

    try:
        ray.get(replica.check_health.remote(), timeout=10)
    except RayTaskError as error:
        assert "model thread has been in one call" in str(error)
        return True
    return False


def _serving_replica(handle, ray_cluster) -> dict:
    """The probe's one running replica, once it answers a request."""
    assert handle.generate.remote(HELLO, GREEDY).result().completion_tokens > 0
    (replica,) = [r for r in _replicas(ray_cluster) if r["state"] == "RUNNING"]
    return replica


def _replaced(before: dict, handle, ray_cluster) -> dict:
    """The running replica that took `before`'s place, once it serves requests."""
    def new_one() -> dict | None:
        running = [r for r in _replicas(ray_cluster) if r["state"] == "RUNNING"]
        fresh = [r for r in running if r["replica_id"] != before["replica_id"]]
        return fresh[0] if fresh and len(running) == 1 else None

    _wait_for(lambda: new_one() is not None, REPLACED_WITHIN_S)
    return _serving_replica(handle, ray_cluster)


def _replicas(ray_cluster) -> list[dict]:
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    details = ServeSubmissionClient(ray_cluster.dashboard_url).get_serve_details()
    app = details.get("applications", {}).get(HEALTH_APP) or {}
    return app.get("deployments", {}).get(PROBE, {}).get("replicas", [])
