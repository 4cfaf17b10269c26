"""The vLLM engine as a second application beside the shared test app, deployed once for this
folder's tests (the cpu profile's text deployment on a CPU share that fits, without
torch.compile) and deleted after them."""

from __future__ import annotations

import copy
import time

import pytest
import yaml
from openai import OpenAI
from tokenizers import Tokenizer

from cluster.deploy import app_config, deploy
from deployments.core.models import model_path
from tests.conftest import APP_NAME, REPO, TEST_ARGS

VLLM_APP, PREFIX = "mmserve-vllm-test", "/vllm"
MODEL = "smollm2-135m-instruct"
PROFILE = REPO / "cluster/profiles/cpu.yaml"
ENGINE_CLIENTS = {"transformers": "openai_client", "vllm": "vllm_openai"}


def vllm_app_args() -> dict:
    """The cpu profile's text deployment, on a CPU share that fits beside the test app,
    without torch.compile so that it starts sooner."""
    profile = yaml.safe_load(PROFILE.read_text())["applications"][0]["args"]
    text = copy.deepcopy(profile["text"])
    text["resources"]["num_cpus"] = 0.3
    text["engine"]["enforce_eager"] = True  # starts ~40 s sooner than compiled
    return {**copy.deepcopy(TEST_ARGS), "text": text,
            "vision": {"resources": {"num_cpus": 0.1}},
            "audio": {"resources": {"num_cpus": 0.1}}}


def serve_config(cluster, with_vllm: bool) -> dict:
    config = app_config(TEST_ARGS, http_port=cluster.http_port, name=APP_NAME)
    if with_vllm:
        vllm = app_config(vllm_app_args(), name=VLLM_APP)["applications"][0]
        config["applications"].append({**vllm, "route_prefix": PREFIX})
    return config


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout_s} s")


@pytest.fixture(scope="package")
def vllm_url(app_url, ray_cluster):
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    dashboard = f"http://127.0.0.1:{ray_cluster.ports['dashboard']}"
    deploy(dashboard, serve_config(ray_cluster, with_vllm=True), timeout_s=300)
    yield f"{app_url}{PREFIX}"
    sdk = ServeSubmissionClient(dashboard)
    sdk.deploy_applications(serve_config(ray_cluster, with_vllm=False))
    wait_for(lambda: VLLM_APP not in sdk.get_serve_details()["applications"], 120,
             f"{VLLM_APP} was not deleted")


@pytest.fixture(scope="package")
def vllm_openai(vllm_url):
    return OpenAI(base_url=f"{vllm_url}/v1", api_key="unused")




@pytest.fixture(scope="module", params=list(ENGINE_CLIENTS))
def engine_client(request) -> OpenAI:
    """The official client of each text engine's app: the session's (transformers), vLLM's."""
    return request.getfixturevalue(ENGINE_CLIENTS[request.param])


@pytest.fixture(scope="module")
def tokenizer(model_dir) -> Tokenizer:
    return Tokenizer.from_file(str(model_path(MODEL, model_dir) / "tokenizer.json"))
