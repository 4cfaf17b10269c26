"""Nothing shared that should not be, on the routes without Ray: the front end with a tenants
file and the response cache on. One tenant's cached answer is never another's (X-Cache says
miss and the model computes it again) unless both opted into the shared namespace, and
X-Cache, Server-Timing and a stream's final server_timing go only to the tenants allowed the
diagnostics. Fake groups count the model calls, so a hidden hit still shows as a call saved."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from bench.local_handle import LocalHandle
from deployments.core.call_protocol import CompletionReply, EmbeddingsReply, ModelInfoReply
from deployments.core.config import TextSettings, load_config
from deployments.replicas import text as text_replicas
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.routes import build_api
from serve_app.tenants import key_digest
from tests.model.test_replicas_unit import FakeStepEngine, build
from tests.model.test_routes_unit import FakeGroup

EMBED = {"model": "clip-vit-b-32", "input": "a secret memo"}
CHAT = {"model": "smollm2-135m-instruct", "temperature": 0,
        "messages": [{"role": "user", "content": "The merger is on?"}]}
STREAM = {"model": "smollm2-135m-instruct", "stream": True, "max_tokens": 3,
          "messages": [{"role": "user", "content": "count"}]}
DIAGNOSTICS = ("X-Cache", "Server-Timing")
TENANTS = {  # name -> (key, diagnostics, cache_namespace)
    "team-a": ("a-key", True, "own"),
    "team-b": ("b-key", True, "own"),
    "quiet": ("q-key", False, "own"),
    "pool-1": ("p1-key", True, "shared"),
    "pool-2": ("p2-key", False, "shared"),
}


@pytest.fixture
def tenants_file(tmp_path):
    path = tmp_path / "tenants.yaml"
    entries = "".join(f"""  - name: {name}
    key_sha256: [{key_digest(key)}]
    diagnostics: {str(diagnostics).lower()}
    cache_namespace: {space}
""" for name, (key, diagnostics, space) in TENANTS.items())
    path.write_text("tenants:\n" + entries)
    return path


@pytest.fixture
def groups():
    return (FakeGroup("text", {"generate": CompletionReply("Yes.", 9, 2, "stop"),
                               "model_info": ModelInfoReply({})}),
            FakeGroup("vision", {"embed_texts": EmbeddingsReply([np.array([0.6, 0.8],
                                                                          np.float32)]),
                                 "model_info": ModelInfoReply({})}),
            FakeGroup("audio", {"model_info": ModelInfoReply({})}))


def keyed_client(groups, tenants_file, monkeypatch) -> TestClient:
    monkeypatch.setenv("MMSERVE_API_KEYS", "plain-key")
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    config = load_config({"cache": {"enabled": True, "chat": True},
                          "ingress": {"tenants": {"file": str(tenants_file)}}})
    return TestClient(build_api(FrontEnd(config, *groups)))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_tenant_b_sending_tenant_as_input_gets_a_miss_and_its_own_computation(
        groups, tenants_file, monkeypatch):
    client = keyed_client(groups, tenants_file, monkeypatch)
    text, vision, _ = groups
    for path, body, group, method in (("/v1/embeddings", EMBED, vision, "embed_texts"),
                                      ("/v1/chat/completions", CHAT, text, "generate")):
        states = [client.post(path, json=body, headers=bearer(key)).headers["X-Cache"]
                  for key in ("a-key", "b-key", "a-key", "b-key")]
        assert states == ["miss", "miss", "hit", "hit"], path
        assert group.calls.count(method) == 2, path


def test_tenants_in_the_shared_namespace_share_entries_and_no_one_else_does(
        groups, tenants_file, monkeypatch):
    client = keyed_client(groups, tenants_file, monkeypatch)
    vision = groups[1]
    assert client.post("/v1/embeddings", json=EMBED,
                       headers=bearer("p1-key")).headers["X-Cache"] == "miss"
    hidden = client.post("/v1/embeddings", json=EMBED, headers=bearer("p2-key"))
    assert hidden.status_code == 200 and "X-Cache" not in hidden.headers
    assert vision.calls.count("embed_texts") == 1  # pool-2 was answered from pool-1's entry
    assert client.post("/v1/embeddings", json=EMBED,
                       headers=bearer("a-key")).headers["X-Cache"] == "miss"
    assert client.post("/v1/embeddings", json=EMBED,
                       headers=bearer("plain-key")).headers["X-Cache"] == "miss"
    assert vision.calls.count("embed_texts") == 3


def test_a_tenant_without_diagnostics_sees_neither_x_cache_nor_server_timing(
        groups, tenants_file, monkeypatch):
    client = keyed_client(groups, tenants_file, monkeypatch)
    answers = [client.post("/v1/embeddings", json=EMBED, headers=bearer("q-key"))
               for _ in range(2)]
    answers += [client.post("/v1/chat/completions", json=CHAT, headers=bearer("q-key")),
                client.get("/v1/models", headers=bearer("q-key")),
                client.post("/v1/embeddings", json={**EMBED, "input": []},
                            headers=bearer("q-key"))]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400]
    for answer in answers:
        assert not [h for h in DIAGNOSTICS if h in answer.headers], answer.request.url
    assert groups[1].calls.count("embed_texts") == 1  # the second was a hit, unsaid
    for key in ("plain-key", "a-key"):
        shown = client.post("/v1/embeddings", json=EMBED, headers=bearer(key))
        assert all(h in shown.headers for h in DIAGNOSTICS), key


def test_a_request_of_no_known_tenant_on_a_keyed_api_gets_no_diagnostics(
        groups, tenants_file, monkeypatch):
    client = keyed_client(groups, tenants_file, monkeypatch)
    for answer in (client.post("/v1/embeddings", json=EMBED),
                   client.post("/v1/embeddings", json=EMBED, headers=bearer("wrong-key")),
                   client.get("/healthz")):
        assert not [h for h in DIAGNOSTICS if h in answer.headers], answer.request.url


def test_the_anonymous_api_keeps_its_diagnostics_and_one_namespace(groups, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    client = TestClient(build_api(FrontEnd(load_config({"cache": {"enabled": True}}),
                                           *groups)))
    answers = [client.post("/v1/embeddings", json=EMBED) for _ in range(2)]
    assert [a.headers["X-Cache"] for a in answers] == ["miss", "hit"]
    assert all("Server-Timing" in a.headers for a in answers)
    assert "Server-Timing" in client.get("/healthz").headers


@pytest.fixture
def streaming_client(tenants_file, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", "plain-key")
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    engine = FakeStepEngine()
    engine.runner.release.set()
    text = build(text_replicas.TextGenerator, TextSettings(), engine, monkeypatch,
                 "load_text_engine")
    groups = [ReplicaGroup("text", LocalHandle(text)), ReplicaGroup("vision", object()),
              ReplicaGroup("audio", object())]
    config = load_config({"ingress": {"tenants": {"file": str(tenants_file)}}})
    with TestClient(build_api(FrontEnd(config, *groups))) as http:
        yield http


def stream_as(client: TestClient, key: str) -> tuple[httpx.Headers, dict]:
    """The stream's response headers and its final chunk (the one with finish_reason)."""
    with client.stream("POST", "/v1/chat/completions", json=STREAM,
                       headers=bearer(key)) as reply:
        assert reply.status_code == 200
        events = [line.removeprefix("data: ") for line in reply.iter_lines()
                  if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["choices"][0]["finish_reason"] == "length"
    return reply.headers, final


def test_a_stream_tells_its_timing_only_to_a_tenant_allowed_it(streaming_client):
    headers, final = stream_as(streaming_client, "q-key")
    assert "Server-Timing" not in headers and "server_timing" not in final
    headers, final = stream_as(streaming_client, "a-key")
    assert "Server-Timing" in headers and "server_timing" in final
