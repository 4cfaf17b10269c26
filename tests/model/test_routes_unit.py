"""The FastAPI routes over the front end, without Ray: the groups are small fakes."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from deployments.core.call_protocol import (
    CompletionReply,
    EmbeddingsReply,
    LabelsReply,
    ModelInfoReply,
    ReadyReply,
    TranscriptReply,
)
from deployments.core.config import AppConfig
from deployments.core.errors import ServeError, Unavailable
from serve_app.frontend import FrontEnd
from serve_app.group_load import GroupLoad
from serve_app.routes import ROUTES, build_api
from tests.media import b64, png_image


class FakeGroup:
    def __init__(self, name: str, answers: dict) -> None:
        self.name, self.answers, self.load = name, answers, GroupLoad()
        self.calls: list[str] = []

    async def call(self, method: str, *args, deadline=None, idempotent=False):
        self.calls.append(method)
        self.args = args
        answer = self.answers[method]
        if isinstance(answer, ServeError):
            raise answer
        return answer


@pytest.fixture
def groups():
    completion = CompletionReply("Paris.", 9, 2, "stop")
    return (FakeGroup("text", {"generate": completion, "ready": ReadyReply(),
                               "model_info": ModelInfoReply({"dtype": "float32",
                                                             "dtype_reason": "r1"})}),
            FakeGroup("vision", {"embed_texts": EmbeddingsReply([np.array([1.0, 0.0],
                                                                          np.float32)]),
                                 "classify": LabelsReply([{"label": "cat", "score": 0.9}]),
                                 "ready": ReadyReply(),
                                 "model_info": ModelInfoReply({"dtype": "bfloat16",
                                                               "dtype_reason": "r2"})}),
            FakeGroup("audio", {"transcribe": TranscriptReply("hello there", "en", 1.0, 1.0, []),
                                "ready": ReadyReply(),
                                "model_info": ModelInfoReply({"compute_type": "int8",
                                                              "compute_type_reason": "r3"})}))


@pytest.fixture
def client(groups, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    return TestClient(build_api(FrontEnd(AppConfig(), *groups)))


def test_the_openapi_schema_lists_every_route_with_its_body_schema(client):
    schema = client.get("/openapi.json").json()
    assert {r.path for r in ROUTES} <= set(schema["paths"])
    chat = schema["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    ref = chat["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    assert "messages" in schema["components"]["schemas"][name]["properties"]
    assert "/openapi.json" not in schema["paths"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_no_docs_page_is_served_since_each_loads_its_script_from_a_cdn(client, path):
    reply = client.get(path)
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == f"no route {path}"


def test_a_route_answers_through_the_front_end(client, groups):
    reply = client.post("/v1/chat/completions", json={
        "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Capital?"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "Paris."
    assert groups[0].calls == ["generate"]


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nowhere", 404), ("GET", "/v1/chat/completions", 405),
    ("DELETE", "/v1/models", 405), ("GET", "/v1/models/", 404)])
def test_the_router_errors_are_openai_shaped_json(client, method, path, status):
    reply = client.request(method, path)
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == status


def test_an_image_sent_to_the_text_embedding_model_names_the_image_model(client, groups):
    for image in (b64(png_image()), "data:image/png;base64," + b64(png_image())):
        reply = client.post("/v1/embeddings", json={"model": "clip-vit-b-32", "input": [image]})
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["param"] == "input[0]" and "clip-vit-b-32-image" in error["message"]
    assert groups[1].calls == []
    ok = client.post("/v1/embeddings", json={"model": "clip-vit-b-32", "input": ["a cat"]})
    assert ok.status_code == 200 and groups[1].calls == ["embed_texts"]


def test_models_say_what_each_engine_chose_and_why(client, groups):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["smollm2-135m-instruct"]["dtype"] == "float32"
    assert models["smollm2-135m-instruct"]["dtype_reason"] == "r1"
    assert models["clip-vit-b-32"]["dtype"] == models["clip-vit-b-32-image"]["dtype"] == \
        "bfloat16"
    assert models["whisper-base"]["compute_type"] == "int8"
    assert all(group.calls == ["model_info"] for group in groups)


def test_models_are_listed_without_a_choice_their_group_cannot_tell(client, groups):
    groups[2].answers["model_info"] = Unavailable("the audio group has no replica")
    reply = client.get("/v1/models")
    assert reply.status_code == 200
    models = {m["id"]: m for m in reply.json()["data"]}
    assert "compute_type" not in models["whisper-base"]
    assert models["smollm2-135m-instruct"]["dtype"] == "float32"


def test_keys_guard_every_route_but_health(groups, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", "secret-key")
    client = TestClient(build_api(FrontEnd(AppConfig(), *groups)))
    key = {"Authorization": "Bearer secret-key"}
    for path in ("/v1/models", "/openapi.json"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert client.get(path, headers=key).is_success, path
    assert "/v1/models" in client.get("/openapi.json", headers=key).json()["paths"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_repeated_authorization_or_timeout_headers_are_refused(groups, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", "secret-key")
    client = TestClient(build_api(FrontEnd(AppConfig(), *groups)))
    key = ("Authorization", "Bearer secret-key")
    twice = client.get("/v1/models", headers=[key, key])
    assert twice.status_code == 401 and "one Authorization" in twice.json()["error"]["message"]
    timeouts = client.get("/v1/models", headers=[key, ("X-Request-Timeout", "5"),
                                                 ("X-Request-Timeout", "9")])
    assert timeouts.status_code == 400
    assert timeouts.json()["error"]["param"] == "X-Request-Timeout"
    assert client.get("/v1/models", headers=[key, ("X-Request-Timeout", "5")]).is_success


def test_a_flood_of_readiness_probes_costs_each_group_one_call_per_second(groups, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    front = FrontEnd(AppConfig(), *groups)
    now = [50.0]
    front.readiness.clock = lambda: now[0]
    client = TestClient(build_api(front))
    answers = [client.get("/readyz") for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert [g.calls for g in groups] == [["ready"]] * 3
    now[0] += 1.5
    assert client.get("/readyz").json()["status"] == "ready"
    assert [g.calls for g in groups] == [["ready", "ready"]] * 3


def test_a_chat_with_media_parts_runs_them_through_the_pipeline_stages(client, groups):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                       + b64(png_image())}}
    audio = {"type": "input_audio", "input_audio": {"data": b64(b"RIFF...."), "format": "wav"}}
    reply = client.post("/v1/chat/completions", json={
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Describe:"},
                                                  image, audio]}]})
    assert reply.status_code == 200, reply.text
    text, vision, speech = groups
    assert vision.calls == ["classify"] and speech.calls == ["transcribe"]
    system, user = text.args[0]
    assert system["role"] == "system"
    assert user["content"] == ('Describe:\nThe image most likely shows: cat (90%).\n\n'
                               'Transcript of the audio: "hello there"')
    stages = [entry.split(";")[0] for entry in reply.headers["server-timing"].split(", ")]
    # the fakes report no stages; tests/model/test_request_timing.py checks real ones
    assert stages == ["ingress", "total"]


def test_too_many_media_parts_is_a_400(client, groups):
    part = {"type": "input_audio", "input_audio": {"data": "AAAA"}}
    reply = client.post("/v1/chat/completions", json={
        "model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": [part] * 5}]})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "messages"
    assert groups[2].calls == []
