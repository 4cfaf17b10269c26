"""Batching: N concurrent requests are served in fewer than N model calls, counted inside the
replica; and the batch size can be changed live through user_config (reconfigure)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import TEST_ARGS, deploy, deployment_handle
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
CONCURRENCY = 8


def stats(deployment: str) -> dict:
    return deployment_handle(deployment).batch_stats.remote().result()


def calls(deployment: str, method: str) -> dict:
    empty = {"model_calls": 0, "items": 0, "model_seconds": 0.0, "recent_batches": []}
    return stats(deployment)["methods"].get(method, empty)


def concurrently(fn, count: int = CONCURRENCY) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: fn(i), range(count)))


def chat(openai_client, i: int):
    return openai_client.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=8, temperature=0.7, seed=i,
        messages=[{"role": "user", "content": f"Count to {i + 2}."}])


def embed(openai_client, i: int):
    return openai_client.embeddings.create(model="clip-vit-b-32-image",
                                           input=b64(png_image((30 * i, 10, 90))))


def assert_batched(before: dict, after: dict, requests: int) -> None:
    served = after["items"] - before["items"]
    model_calls = after["model_calls"] - before["model_calls"]
    assert served == requests
    assert model_calls < requests, f"{requests} requests took {model_calls} model calls"
    assert after["model_seconds"] > before["model_seconds"]


def new_batches(before: dict, after: dict) -> list[int]:
    return after["recent_batches"][len(after["recent_batches"]) - (
        after["model_calls"] - before["model_calls"]):]


def test_concurrent_chat_is_decoded_together(openai_client):
    before = {m: calls("TextGenerator", m) for m in ("prefill", "decode")}
    replies = concurrently(lambda i: chat(openai_client, i))
    assert all(r.usage.completion_tokens > 0 for r in replies)
    after = {m: calls("TextGenerator", m) for m in ("prefill", "decode")}
    assert after["prefill"]["items"] - before["prefill"]["items"] == CONCURRENCY
    # Continuous batching: rows join between steps, so steps hold several requests' rows.
    assert max(new_batches(before["decode"], after["decode"])) >= 2


def test_concurrent_image_embeddings_are_batched(openai_client):
    before = calls("ImageEmbedder", "embed_image")
    concurrently(lambda i: embed(openai_client, i))
    assert_batched(before, calls("ImageEmbedder", "embed_image"), CONCURRENCY)


def test_concurrent_transcriptions_are_batched(openai_client):
    before = calls("SpeechTranscriber", "transcribe")
    results = concurrently(lambda i: openai_client.audio.transcriptions.create(
        model="whisper-base", file=("clip.wav", io.BytesIO(speech_wav()), "audio/wav")), 4)
    assert all("dog" in r.text.lower() for r in results)
    assert_batched(before, calls("SpeechTranscriber", "transcribe"), 4)


def test_seeded_request_is_unaffected_by_its_batch(openai_client):
    alone = chat(openai_client, 3).choices[0].message.content
    together = concurrently(lambda i: chat(openai_client, 3 if i == 0 else i + 10), 6)
    assert together[0].choices[0].message.content == alone


# Every modality's batch size is reconfigured through user_config, without a restart: the
# DynamicBatcher's, and the rows the text scheduler runs together.
@pytest.mark.parametrize("deployment, method, group, send", [
    ("TextGenerator", "decode", "text", chat),
    ("ImageEmbedder", "embed_image", "vision", embed)])
def test_batch_size_changes_live_through_reconfigure(openai_client, ray_cluster, deployment,
                                                     method, group, send):
    pid_before = stats(deployment)["pid"]
    small = {"max_batch_size": 2, "batch_wait_timeout_s": 0.2}
    try:
        deploy(ray_cluster, [{"name": deployment, "user_config": small}])
        before = calls(deployment, method)
        concurrently(lambda i: send(openai_client, i), 6)
        after = calls(deployment, method)
        if method == "embed_image":
            assert after["items"] - before["items"] == 6
        assert max(new_batches(before, after)) <= 2
        assert 2 in new_batches(before, after)
        assert stats(deployment)["pid"] == pid_before  # reconfigured, not restarted
    finally:
        default = TEST_ARGS[group]["batching"]
        deploy(ray_cluster, [{"name": deployment, "user_config": default}])
