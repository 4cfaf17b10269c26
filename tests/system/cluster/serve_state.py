"""Reading and driving a Serve app on a cluster the tests started, through its dashboard."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cluster.deploy import APP_NAME as APP


def submission_client(dashboard_url: str):
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    return ServeSubmissionClient(dashboard_url)


def deploy(dashboard_url: str, config: dict) -> None:
    """What `serve deploy` does: hand the declarative config to the controller."""
    submission_client(dashboard_url).deploy_applications(config)


def app_details(dashboard_url: str) -> dict[str, Any]:
    return submission_client(dashboard_url).get_serve_details().get("applications", {}).get(
        APP, {})


def replica_states(dashboard_url: str, deployment: str) -> list[str]:
    return [r["state"] for r in app_details(dashboard_url)["deployments"][deployment]["replicas"]]


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str,
             every_s: float = 0.5) -> Any:
    """Polls until `condition()` is truthy and returns it; fails naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def deploy_and_wait(dashboard_url: str, config: dict, timeout_s: float = 300) -> None:
    from cluster.deploy import deploy as deploy_config

    deploy_config(dashboard_url, config, timeout_s)


@contextmanager
def ray_connection(address: str) -> Iterator[None]:
    """This process as a driver of the cluster at `address`; any earlier connection (the
    session app's) is restored afterwards, since a process talks to one cluster at a time."""
    import ray

    previous = ray.get_runtime_context().gcs_address if ray.is_initialized() else None
    ray.shutdown()
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        _shutdown_handles()
        ray.shutdown()
        if previous:
            ray.init(address=previous, logging_level="ERROR", log_to_driver=False)


def _shutdown_handles() -> None:
    """Stops the routers of the handles this process made, which would keep polling."""
    from ray.serve import context

    client = context._get_global_client(raise_if_no_controller_running=False)
    if client is not None:
        client.shutdown_cached_handles()
    context._set_global_client(None)
