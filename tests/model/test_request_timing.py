"""Server-Timing without Ray: the front end over replica classes built in process (the same
ReplicaGroup and replica code as in Serve, over LocalHandle), and RequestTiming's arithmetic."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from bench.local_handle import LocalHandle
from deployments.core.config import AppConfig, TextSettings, VisionSettings
from deployments.replicas import text as text_replicas
from deployments.replicas import vision as vision_replicas
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.request_timing import GroupCall, RequestTiming, parse_header
from serve_app.routes import build_api
from tests.media import b64, png_image
from tests.model.test_replicas_unit import FakeStepEngine, FakeVisionEngine, build

MODEL_S = 0.05


class SlowVisionEngine(FakeVisionEngine):
    def embed_images(self, images):
        time.sleep(MODEL_S)
        return np.ones((len(images), 4), np.float32) / 2


@pytest.fixture
def client(monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    vision_engine, text_engine = SlowVisionEngine(), FakeStepEngine()
    vision_engine.release.set()
    text_engine.runner.release.set()
    vision = build(vision_replicas.ImageEmbedder, VisionSettings(), vision_engine,
                   monkeypatch, "load_vision_engine")
    text = build(text_replicas.TextGenerator, TextSettings(), text_engine, monkeypatch,
                 "load_text_engine")
    groups = [ReplicaGroup(name, LocalHandle(replica))
              for name, replica in (("text", text), ("vision", vision), ("audio", object()))]
    with TestClient(build_api(FrontEnd(AppConfig(), *groups))) as http:
        yield http


def test_an_embedding_answer_times_its_ingress_and_each_replica_stage(client):
    started = time.perf_counter()
    reply = client.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                                "input": [b64(png_image())]})
    latency_ms = (time.perf_counter() - started) * 1000
    assert reply.status_code == 200, reply.text
    stages = parse_header(reply.headers["server-timing"])
    assert list(stages) == ["ingress", "vision-handle", "vision-queue", "vision-batch",
                            "vision-model", "vision-replica", "total"]
    assert stages["vision-model"] >= MODEL_S * 1000
    parts = sum(ms for name, ms in stages.items() if name != "total")
    assert parts == pytest.approx(stages["total"], abs=0.5)  # rounding of each entry
    assert stages["total"] <= latency_ms


def test_a_stream_gives_its_first_token_time_in_the_header_and_all_in_the_final_event(client):
    with client.stream("POST", "/v1/chat/completions", json={
            "model": "smollm2-135m-instruct", "stream": True, "max_tokens": 4,
            "messages": [{"role": "user", "content": "count"}]}) as reply:
        header = parse_header(reply.headers["server-timing"])
        events = [line.removeprefix("data: ") for line in reply.iter_lines()
                  if line.startswith("data: ")]
    assert set(header) == {"ingress", "text", "total"}  # the text call, to its first item
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["choices"][0]["finish_reason"] == "length"
    stages = parse_header(final["server_timing"])
    assert {"text-handle", "text-first-token", "text-decode", "text-replica"} <= set(stages)
    assert stages["total"] >= header["total"]


def test_an_error_answer_is_timed_too(client):
    reply = client.post("/v1/embeddings", json={"model": "nope", "input": ["a"]})
    assert reply.status_code == 404
    assert set(parse_header(reply.headers["server-timing"])) == {"ingress", "total"}


def test_overlapping_calls_count_once_in_the_ingress_time():
    timing = RequestTiming()
    start = timing.start
    timing.add_call(GroupCall("audio", start + 0.1, 0.5, [("model", start + 0.2, 0.3)]))
    timing.add_call(GroupCall("vision", start + 0.2, 0.2))  # inside the audio call
    timing.add_call(GroupCall("vision", start + 0.3, 0.6))  # overlaps it; the longest vision
    timing.add_call(GroupCall("text", start + 1.0, 0.1))
    time.sleep(1.2)
    entries = dict(timing.entries())
    covered = 0.8 + 0.1  # 0.1 .. 0.9, then 1.0 .. 1.1
    assert entries["ingress"] == pytest.approx(entries["total"] - covered, abs=1e-6)
    assert entries["vision"] == 0.6 and entries["text"] == 0.1
    assert entries["audio-handle"] == pytest.approx(0.2) and entries["audio-model"] == 0.3


def test_tracing_makes_a_span_per_request_call_and_stage_collected_in_process(monkeypatch):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from deployments.core.config import Tracing
    from serve_app.tracing import RequestTracer

    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    engine = SlowVisionEngine()
    engine.release.set()
    vision = build(vision_replicas.ImageEmbedder, VisionSettings(), engine, monkeypatch,
                   "load_vision_engine")
    front = FrontEnd(AppConfig(observability={"server_timing": False}),
                     *(ReplicaGroup(name, LocalHandle(vision)) for name in
                       ("text", "vision", "audio")))
    spans = InMemorySpanExporter()
    front.tracer = RequestTracer(Tracing(enabled=True), spans)
    with TestClient(build_api(front)) as http:
        reply = http.post("/v1/embeddings", json={"model": "clip-vit-b-32-image",
                                                  "input": [b64(png_image())]},
                          headers={"X-Request-Id": "trace-me"})
    assert reply.status_code == 200 and "server-timing" not in reply.headers
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert set(by_name) == {"POST /v1/embeddings", "vision", "vision.queue", "vision.batch",
                            "vision.model", "vision.replica"}
    root, call, model = by_name["POST /v1/embeddings"], by_name["vision"], by_name["vision.model"]
    assert root.attributes["mmserve.request_id"] == "trace-me"
    assert call.parent.span_id == root.context.span_id
    assert model.parent.span_id == call.context.span_id
    assert root.start_time <= call.start_time <= model.start_time
    assert model.end_time <= call.end_time <= root.end_time
    assert model.end_time - model.start_time >= MODEL_S * 1e9
