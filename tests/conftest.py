"""Shared fixtures and the tiers. Live-app tests share one local Ray head and one deployed app
per session.

The head is started by the tests themselves, on free ports with its own temp dir, and stopped
by its process group: nothing else running on the machine is touched. This file is loaded by
every tier, the unit tier's light venv included, so what it needs from Ray, requests or the
cluster tools is imported inside the fixtures that use it.

Each test gets its tier's marker from its folder (tests/unit -> `unit`, ...), so `-m unit` or
`-m "not system"` selects tiers as well as paths do.
"""

from __future__ import annotations

import os

# A handle's background thread outlives ray.shutdown() and would otherwise auto-start a fresh
# local Ray (which, on Ray 2.60, also writes ~/.ray/auth_token for the whole machine).
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from deployments.core.models import default_model_dir

if TYPE_CHECKING:
    from cluster.local_ray import LocalRay

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "model", "integration", "system")
APP_NAME = "mmserve-test"
# How often Ray's agent exports metrics on the test cluster (Ray's default is 10 s): tests that
# read Prometheus wait for an export or two, and seconds are cheaper than tens of seconds.
METRICS_EXPORT_S = 2
# Small limits and a longer batch window make the behaviour under test easy to provoke.
TEST_ARGS = {
    "ingress": {"max_body_bytes": 2 * 1024 * 1024, "request_timeout_s": 120},
    # float32 whatever the CPU: tests compare greedy answers across batch shapes, which
    # bfloat16 does not keep identical on every CPU.
    "text": {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.2},
             "resources": {"num_cpus": 0.5}, "engine": {"dtype": "float32"}},
    "vision": {"batching": {"max_batch_size": 16, "batch_wait_timeout_s": 0.2},
               "resources": {"num_cpus": 0.5}},
    "audio": {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.2},
              "resources": {"num_cpus": 0.5}},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks each test with its tier, named by the folder under tests/ it lives in."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts
        if parts and parts[0] in TIERS:
            item.add_marker(parts[0])


@pytest.fixture(scope="session")
def model_dir() -> str:
    return str(default_model_dir())


@pytest.fixture(scope="session")
def ray_cluster(model_dir: str):
    from cluster.local_ray import LocalRay

    env = {"PYTHONPATH": str(REPO), "MMSERVE_MODEL_DIR": model_dir,
           "RAY_metrics_report_interval_ms": str(METRICS_EXPORT_S * 1000)}
    cluster = LocalRay(num_cpus=2, env=env).start()
    yield cluster
    cluster.stop()


def deploy(cluster: LocalRay, overrides: list[dict] | None = None, timeout_s: float = 300) -> None:
    """Deploys the test app as `serve deploy` does: a declarative config through the dashboard.

    Redeploying with only user_config changed reconfigures replicas instead of restarting them.
    """
    from cluster.deploy import app_config
    from cluster.deploy import deploy as deploy_config

    config = app_config(TEST_ARGS, overrides, cluster.http_port, name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{cluster.ports['dashboard']}", config, timeout_s)


@pytest.fixture(scope="session")
def app_url(ray_cluster: LocalRay):
    import ray

    ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
    deploy(ray_cluster)
    yield f"http://127.0.0.1:{ray_cluster.http_port}"
    ray.shutdown()


@pytest.fixture(scope="session")
def client(app_url: str):
    with httpx.Client(base_url=app_url, timeout=180) as http:
        yield http


@pytest.fixture(scope="session")
def openai_client(app_url: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{app_url}/v1", api_key=os.environ.get("OPENAI_API_KEY", "unused"))


@pytest.fixture(scope="module")
def replicas(ray_cluster: LocalRay, app_url: str):
    """Serve's view of the test app's replicas and their processes, once the app is healthy."""
    from bench.replica_kill import ReplicaView

    view = ReplicaView(ray_cluster.dashboard_url, APP_NAME)
    view.wait_healthy()
    return view


def deployment_handle(name: str):
    from ray import serve

    return serve.get_deployment_handle(name, app_name=APP_NAME)
