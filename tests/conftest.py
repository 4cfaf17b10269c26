"""Shared fixtures. Integration tests share one local Ray head and one deployed app per session.

The head is started by the tests themselves, on free ports with its own temp dir, and stopped
by its process group: nothing else running on the machine is touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from serve_app.local_ray import LocalRay
from serve_app.models import default_model_dir

REPO = Path(__file__).resolve().parent.parent
APP_NAME = "mmserve-test"
# Small limits and a longer batch window make the behaviour under test easy to provoke.
TEST_ARGS = {
    "ingress": {"max_body_bytes": 2 * 1024 * 1024, "request_timeout_s": 120},
    "text": {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.2},
             "resources": {"num_cpus": 0.5}},
    "vision": {"batching": {"max_batch_size": 16, "batch_wait_timeout_s": 0.2},
               "resources": {"num_cpus": 0.5}},
    "audio": {"batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.2},
              "resources": {"num_cpus": 0.5}},
}


@pytest.fixture(scope="session")
def model_dir() -> str:
    return str(default_model_dir())


@pytest.fixture(scope="session")
def ray_cluster(model_dir: str):
    env = {"PYTHONPATH": str(REPO), "MMSERVE_MODEL_DIR": model_dir}
    cluster = LocalRay(num_cpus=2, env=env).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def app_url(ray_cluster: LocalRay):
    import ray
    from ray import serve

    from serve_app.app import build_app

    ray.init(address=ray_cluster.address, logging_level="ERROR", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": ray_cluster.http_port})
    serve.run(build_app(TEST_ARGS), name=APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{ray_cluster.http_port}"
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def client(app_url: str):
    with httpx.Client(base_url=app_url, timeout=180) as http:
        yield http


@pytest.fixture(scope="session")
def openai_client(app_url: str):
    from openai import OpenAI

    return OpenAI(base_url=f"{app_url}/v1", api_key=os.environ.get("OPENAI_API_KEY", "unused"))


def deployment_handle(name: str):
    from ray import serve

    return serve.get_deployment_handle(name, app_name=APP_NAME)
