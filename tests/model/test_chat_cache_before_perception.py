"""A chat with image and audio parts, answered from the response cache: its key is computed from
the request (the media's bytes, the perceiving models' versions) before any stage runs, so a
hit calls no replica at all. Through the real front end and ReplicaGroup; only the Serve
handles are fakes, which count the calls that reach them."""

from __future__ import annotations

import base64

import pytest
from starlette.testclient import TestClient

from deployments.core.call_protocol import (
    CallContext,
    CompletionReply,
    LabelsReply,
    TranscriptReply,
)
from deployments.core.config import load_config
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.routes import build_api

REPLIES = {
    "generate": CompletionReply("A cat says hello.", 40, 5, "stop"),
    "classify": LabelsReply([{"label": "animal", "score": 0.8}]),
    "transcribe": TranscriptReply("hello", "en", 1.0, 1.0, []),
}


class CountingHandle:
    """A deployment handle whose `method.remote(*args)` answers at once, and is counted."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __getattr__(self, method: str):
        calls = self.calls

        class Method:
            def remote(self, *args):
                assert isinstance(args[-1], CallContext)
                calls.append(method)
                return Answer(REPLIES[method])
        return Method()


class Answer:
    def __init__(self, reply) -> None:
        self.reply = reply

    def __await__(self):
        yield from ()
        return self.reply

    def cancel(self) -> None:
        pass


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def client(calls, monkeypatch) -> TestClient:
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    config = load_config({"cache": {"enabled": True, "chat": True}})
    groups = [ReplicaGroup(name, CountingHandle(calls)) for name in ("text", "vision", "audio")]
    return TestClient(build_api(FrontEnd(config, *groups)))


def chat(image: bytes, audio: bytes) -> dict:
    image_url = "data:image/png;base64," + base64.b64encode(image).decode()
    parts = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": image_url}},
             {"type": "input_audio", "input_audio": {"data": base64.b64encode(audio).decode(),
                                                     "format": "wav"}}]
    return {"model": "smollm2-135m-instruct", "temperature": 0,
            "messages": [{"role": "user", "content": parts}]}


def test_a_cached_media_chat_calls_no_replica(client, calls):
    body = chat(b"\x89PNG one image", b"RIFF one clip")
    first = client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache"] == "miss"
    assert sorted(calls) == ["classify", "generate", "transcribe"]
    calls.clear()
    again = client.post("/v1/chat/completions", json=body)
    assert again.status_code == 200, again.text
    assert again.headers["X-Cache"] == "hit" and calls == []
    assert again.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
    assert again.json()["usage"] == first.json()["usage"]


def test_other_media_bytes_are_another_key(client, calls):
    client.post("/v1/chat/completions", json=chat(b"\x89PNG one image", b"RIFF one clip"))
    calls.clear()
    other = client.post("/v1/chat/completions", json=chat(b"\x89PNG another", b"RIFF one clip"))
    assert other.headers["X-Cache"] == "miss"
    assert sorted(calls) == ["classify", "generate", "transcribe"]


def test_another_vision_or_speech_model_version_is_another_key(calls, monkeypatch):
    """The chat's answer depends on what perceived its media: a changed vision or audio engine
    (here its checkpoint or quantization) must not serve the answer cached before."""
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    base = {"cache": {"enabled": True, "chat": True}}
    configs = [base, {**base, "vision": {"engine": {"checkpoint": "/retrained.pt"}}},
               {**base, "audio": {"engine": {"compute_type": "float32"}}}]
    fronts = [FrontEnd(load_config(config),
                       *(ReplicaGroup(name, CountingHandle(calls))
                         for name in ("text", "vision", "audio"))) for config in configs]
    for front in fronts[1:]:
        front.cache.store = fronts[0].cache.store  # one store, as Redis shares it
    body = chat(b"\x89PNG one image", b"RIFF one clip")
    states = []
    for front in fronts:
        with TestClient(build_api(front)) as http:
            states.append(http.post("/v1/chat/completions", json=body).headers["X-Cache"])
    assert states == ["miss", "miss", "miss"]
    assert calls.count("classify") == 3
