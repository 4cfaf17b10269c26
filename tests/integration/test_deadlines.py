"""Deadlines, backpressure and disconnects, live: work whose deadline passed is dropped before
the model sees it, a full group answers 429 with a Retry-After, /readyz tells overloaded from
down, and a client that goes away stops its work in every modality."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import deploy, deployment_handle
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
LONG_SPEECH = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)
CHAT = {"model": "smollm2-135m-instruct", "temperature": 0,
        "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}]}


def stats(deployment: str) -> dict:
    return deployment_handle(deployment).batch_stats.remote().result()


def event(deployment: str, name: str) -> int:
    return stats(deployment)["events"].get(name, 0)


def items(deployment: str, method: str) -> int:
    return stats(deployment)["methods"].get(method, {}).get("items", 0)


def model_calls(deployment: str, method: str) -> int:
    """Batches of `method` that entered the model: counted as each call starts."""
    return stats(deployment)["methods"].get(method, {}).get("model_calls", 0)


def wait_for_model_call(deployment: str, method: str, before: int, timeout_s: float = 60) -> None:
    """Returns once a batch of `method` past the first `before` has entered the model."""
    deadline = time.monotonic() + timeout_s
    while model_calls(deployment, method) <= before:
        assert time.monotonic() < deadline, f"no {method} batch reached the model"


def transcribe(client, wav: bytes, **headers) -> httpx.Response:
    return client.post("/v1/audio/transcriptions", data={"model": "whisper-base"},
                       files={"file": ("a.wav", wav, "audio/wav")}, headers=headers)


def test_a_bad_timeout_header_is_a_400(client):
    response = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2},
                           headers={"X-Request-Timeout": "soon"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Request-Timeout"


def test_a_body_that_stops_arriving_is_a_408_by_the_requests_deadline(app_url):
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(app_url)
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: {url.hostname}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            f"X-Request-Timeout: 1\r\n\r\n").encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + b'{"model": "clip-vit-b-32", "input": "a')  # and no more
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 408 " in status_line, answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == 408 and "deadline" in body["error"]["message"]


def test_work_past_its_deadline_is_dropped_before_the_model(client):
    busy = speech_wav(LONG_SPEECH)
    dropped_before = event("SpeechTranscriber", "deadline_dropped")
    items_before = items("SpeechTranscriber", "transcribe")
    calls_before = model_calls("SpeechTranscriber", "transcribe")
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(transcribe, client, busy)
        # once the long clip is in the model, the next one waits behind it
        wait_for_model_call("SpeechTranscriber", "transcribe", calls_before)
        late = transcribe(client, speech_wav(), **{"X-Request-Timeout": "0.5"})
        assert slow.result().status_code == 200
    assert late.status_code == 504, late.text
    assert late.json()["error"]["code"] == 504
    assert event("SpeechTranscriber", "deadline_dropped") > dropped_before
    assert items("SpeechTranscriber", "transcribe") == items_before + 1  # only the long clip


def test_a_stream_past_its_deadline_ends_with_an_error_event(client):
    body = {**CHAT, "max_tokens": 400, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body,
                       headers={"X-Request-Timeout": "2"}) as response:
        assert response.status_code == 200
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == 504 and "deadline" in error["message"]
    assert len(events) > 3  # tokens came before the deadline cut the stream


def readyz_while_full(client, clip: bytes) -> tuple[httpx.Response, httpx.Response]:
    """Fills the audio group (one long clip in the model, one queued behind it), sends short
    clips until one is turned away, and asks /readyz at once. Returns that rejection and the
    /readyz answer, asked while both long clips were still unanswered, so the group was full
    all along. Repeats until the ingress's handle knows the group's new queue limit."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with ThreadPoolExecutor(2) as pool:
            holders = [pool.submit(transcribe, client, clip) for _ in range(2)]
            while not any(holder.done() for holder in holders):
                probe = transcribe(client, speech_wav())
                assert probe.status_code in (200, 429), probe.text
                if probe.status_code == 429:
                    ready = client.get("/readyz")
                    if not any(holder.done() for holder in holders):
                        return probe, ready
            answers = [holder.result() for holder in holders]
            assert {a.status_code for a in answers} <= {200, 429}, [a.text for a in answers]
    raise AssertionError("no request was turned away while a queue of one was full")


def test_a_full_group_answers_429_with_retry_after_and_readyz_says_overloaded(
        ray_cluster, client):
    tight = [{"name": "SpeechTranscriber", "max_ongoing_requests": 1, "max_queued_requests": 1}]
    deploy(ray_cluster, tight)
    try:
        rejected, ready = readyz_while_full(client, speech_wav(LONG_SPEECH))
        assert int(rejected.headers["Retry-After"]) >= 1
        assert rejected.json()["error"]["type"] == "rate_limit_error"
        assert ready.status_code == 429, ready.text
        assert ready.json()["status"] == "overloaded"
        assert ready.json()["deployments"]["audio"] == "overloaded"
        assert int(ready.headers["Retry-After"]) >= 1
    finally:
        deploy(ray_cluster)


def _leave_early(url: str, path: str, seconds: float, **kwargs) -> None:
    with httpx.Client(base_url=url, timeout=seconds) as impatient:
        with pytest.raises(httpx.TimeoutException):
            impatient.post(path, **kwargs)


@pytest.mark.parametrize("modality", ["audio", "vision", "text"])
def test_a_client_that_leaves_stops_its_work(app_url, client, modality):
    """A request queued behind a busy model is dropped when its client disconnects; a text row
    already decoding is aborted at its next step."""
    deployment, method, request = {
        "audio": ("SpeechTranscriber", "transcribe",
                  {"data": {"model": "whisper-base"},
                   "files": {"file": ("a.wav", speech_wav(), "audio/wav")}}),
        "vision": ("ImageEmbedder", "embed_image",
                   {"json": {"model": "clip-vit-b-32-image", "input": [b64(png_image())] * 4}}),
        "text": ("TextGenerator", "generate", {"json": {**CHAT, "max_tokens": 400}}),
    }[modality]
    path = {"audio": "/v1/audio/transcriptions", "vision": "/v1/embeddings",
            "text": "/v1/chat/completions"}[modality]
    keep_busy = {  # work that holds the model while the impatient request waits behind it
        "audio": lambda: transcribe(client, speech_wav(LONG_SPEECH)),
        "vision": lambda: client.post("/v1/embeddings", json={
            "model": "clip-vit-b-32-image",
            "input": [b64(png_image((9, 9, i))) for i in range(64)]}),
    }.get(modality)
    cancelled_before = event(deployment, "cancelled")
    busy_method = {"audio": "transcribe", "vision": "embed_image"}.get(modality)
    calls_before = model_calls(deployment, busy_method) if busy_method else 0
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(keep_busy) if keep_busy else None
        if busy_method:  # the model is busy: the impatient request waits behind it
            wait_for_model_call(deployment, busy_method, calls_before)
        _leave_early(app_url, path, 1.0, **request)
        if busy is not None:
            assert busy.result().status_code == 200
    deadline = time.monotonic() + 30
    while event(deployment, "cancelled") == cancelled_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert event(deployment, "cancelled") > cancelled_before
    serves_on = {"json": {**CHAT, "max_tokens": 8}} if modality == "text" else request
    assert client.post(path, **serves_on).status_code == 200  # and the group serves on
