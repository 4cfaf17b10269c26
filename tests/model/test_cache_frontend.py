"""The response cache hooked into the front end's routes, without Ray: fake groups count calls."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from starlette.testclient import TestClient

from deployments.core.call_protocol import CompletionReply, EmbeddingsReply, TranscriptReply
from deployments.core.config import load_config
from serve_app.frontend import FrontEnd
from serve_app.routes import build_api
from tests.model.test_routes_unit import FakeGroup

CHAT = {"model": "smollm2-135m-instruct", "temperature": 0,
        "messages": [{"role": "user", "content": "Capital?"}]}


@pytest.fixture
def groups():
    return (FakeGroup("text", {"generate": CompletionReply("Paris.", 9, 2, "stop")}),
            FakeGroup("vision", {"embed_texts": EmbeddingsReply([np.array([0.6, 0.8],
                                                                          np.float32)])}),
            FakeGroup("audio", {"speech": TranscriptReply("hello", "en", 1.0, 1.0, [])}))


def client_with(groups, monkeypatch, cache: dict) -> TestClient:
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    return TestClient(build_api(FrontEnd(load_config({"cache": cache}), *groups)))


def test_each_cached_route_says_miss_then_hit_and_computes_once(groups, monkeypatch):
    client = client_with(groups, monkeypatch, {"enabled": True, "chat": True})
    body = {"model": "clip-vit-b-32", "input": "a cat"}
    answers = [client.post("/v1/embeddings", json={**body, "encoding_format": fmt})
               for fmt in ("float", "base64")]
    assert [a.headers["X-Cache"] for a in answers] == ["miss", "hit"]
    assert groups[1].calls == ["embed_texts"]
    as_floats = answers[0].json()["data"][0]["embedding"]
    from_base64 = np.frombuffer(base64.b64decode(answers[1].json()["data"][0]["embedding"]), "<f4")
    np.testing.assert_array_equal(from_base64, np.array(as_floats, np.float32))
    wav = {"file": ("a.wav", b"RIFF" + bytes(64), "audio/wav")}
    heard = [client.post("/v1/audio/transcriptions", files=wav,
                         data={"model": model, "response_format": "text"})
             for model in ("whisper-base", "whisper-1")]
    assert [h.headers["X-Cache"] for h in heard] == ["miss", "hit"]
    assert heard[1].text == "hello\n" and groups[2].calls == ["speech"]
    chats = [client.post("/v1/chat/completions", json=CHAT) for _ in range(2)]
    assert [c.headers["X-Cache"] for c in chats] == ["miss", "hit"]
    assert chats[1].json()["choices"][0]["message"]["content"] == "Paris."
    assert chats[0].json()["id"] != chats[1].json()["id"]
    sampled = client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.5})
    assert sampled.headers["X-Cache"] == "bypass" and groups[0].calls.count("generate") == 2


def test_no_header_without_the_cache_and_none_on_errors(groups, monkeypatch):
    client = client_with(groups, monkeypatch, {"enabled": True})  # chat not opted in
    assert "X-Cache" not in client.post("/v1/chat/completions", json=CHAT).headers
    bad = client.post("/v1/embeddings", json={"model": "clip-vit-b-32", "input": []})
    assert bad.status_code == 400 and "X-Cache" not in bad.headers
    off = client_with(groups, monkeypatch, {})
    assert "X-Cache" not in off.post("/v1/embeddings", json={"model": "clip-vit-b-32",
                                                             "input": "a cat"}).headers
