"""Where each request's time went, through the live app: a Server-Timing header on every route
(and in a stream's final event) whose stages add up to the latency the client measured, and a
request id that Serve writes on the log lines of every replica the request reached."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from serve_app.request_timing import parse_header
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
TEXT = "smollm2-135m-instruct"
WITHIN = 0.10  # the bound: the stages sum to within 10% of the measured latency
REPLICAS = ("Ingress", "TextGenerator", "ImageEmbedder", "SpeechTranscriber")


def chat(**extra) -> dict:
    return {"model": TEXT, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Name three colours."}], **extra}


def pipeline(**extra) -> dict:
    return {"audio": b64(speech_wav()), "image": b64(png_image()), "labels": ["a cat", "a car"],
            "prompt": "What did you hear and see?", "max_tokens": 8, **extra}


def timed(client, method: str, path: str, **kwargs) -> tuple[dict[str, float], float, object]:
    started = time.perf_counter()
    reply = client.request(method, path, **kwargs)
    latency_ms = (time.perf_counter() - started) * 1000
    assert reply.status_code < 500, reply.text
    return parse_header(reply.headers["server-timing"]), latency_ms, reply


def critical_path(stages: dict[str, float]) -> float:
    """The stages one after another; the pipeline's audio and vision calls overlap, so only
    the longer of the two counts."""
    per_group: dict[str, float] = {}
    for name, ms in stages.items():
        if name != "total":
            group = name.split("-")[0]
            per_group[group] = per_group.get(group, 0.0) + ms
    side_by_side = max(per_group.pop("audio", 0.0), per_group.pop("vision", 0.0))
    return sum(per_group.values()) + side_by_side


@pytest.mark.parametrize("method, path, kwargs, groups", [
    ("POST", "/v1/chat/completions", {"json": chat()}, {"text"}),
    ("POST", "/v1/embeddings", {"json": {"model": "clip-vit-b-32", "input": ["a cat"] * 8}},
     {"vision"}),
    ("POST", "/v1/embeddings",
     {"json": {"model": "clip-vit-b-32-image", "input": [b64(png_image())]}}, {"vision"}),
    ("POST", "/v1/audio/transcriptions",
     {"files": {"file": ("a.wav", speech_wav(), "audio/wav")}, "data": {"model": "whisper-1"}},
     {"audio"}),
    ("POST", "/v1/pipeline", {"json": pipeline()}, {"audio", "vision", "text"}),
])
def test_every_model_route_times_its_stages_and_they_add_up(client, method, path, kwargs,
                                                            groups):
    timed(client, method, path, **kwargs)  # warm: the first call of a route pays once
    stages, latency_ms, _ = timed(client, method, path, **kwargs)
    for group in groups:
        assert f"{group}-handle" in stages and f"{group}-replica" in stages, stages
    assert critical_path(stages) == pytest.approx(latency_ms, rel=WITHIN), (stages, latency_ms)


def test_the_batched_groups_show_queue_batch_and_model(client):
    stages, _, _ = timed(client, "POST", "/v1/embeddings",
                         json={"model": "clip-vit-b-32-image", "input": [b64(png_image())]})
    assert {"vision-queue", "vision-batch", "vision-model"} <= set(stages)
    assert stages["vision-model"] > 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/models"])
def test_routes_without_a_model_call_are_timed_too(client, path):
    stages, _, _ = timed(client, "GET", path)
    assert {"ingress", "total"} <= set(stages)


def test_an_error_answer_is_timed(client):
    stages, _, reply = timed(client, "POST", "/v1/embeddings",
                             json={"model": "no-such-model", "input": ["a"]})
    assert reply.status_code == 404 and {"ingress", "total"} <= set(stages)


def test_a_stream_times_its_first_token_in_the_header_and_everything_in_its_last_event(client):
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as reply:
        header = parse_header(reply.headers["server-timing"])
        events = [line.removeprefix("data: ") for line in reply.iter_lines() if line]
    latency_ms = (time.perf_counter() - started) * 1000
    assert events[-1] == "[DONE]"
    final = parse_header(json.loads(events[-2])["server_timing"])
    assert {"text-handle", "text-first-token", "text-replica"} <= set(final)
    assert header["total"] <= final["total"]
    assert critical_path(final) == pytest.approx(latency_ms, rel=WITHIN), (final, latency_ms)


def test_a_pipeline_stream_carries_its_timing_in_the_done_event(client):
    with client.stream("POST", "/v1/pipeline", json=pipeline(stream=True)) as reply:
        events = [line.removeprefix("data: ") for line in reply.iter_lines() if line]
    done = json.loads(events[-2])
    assert done["type"] == "done"
    stages = parse_header(done["server_timing"])
    assert {"audio-model", "vision-model", "text-first-token"} <= set(stages)


def serve_logs(ray_cluster) -> list[Path]:
    return sorted(Path(ray_cluster.temp_dir, "session_latest", "logs", "serve").glob(
        "replica_*.log"))


def test_one_pipeline_request_id_is_in_the_log_of_every_replica_it_reached(client, ray_cluster):
    request_id = f"test-{uuid.uuid4()}"
    reply = client.post("/v1/pipeline", json=pipeline(), headers={"X-Request-Id": request_id})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == request_id
    found: set[str] = set()
    for _ in range(50):  # log lines are flushed within a moment
        found = {deployment for path in serve_logs(ray_cluster) for deployment in REPLICAS
                 if f"_{deployment}_" in path.name and request_id in path.read_text()}
        if found == set(REPLICAS):
            break
        time.sleep(0.2)
    assert found == set(REPLICAS)
