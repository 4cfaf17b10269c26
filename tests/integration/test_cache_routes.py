"""The response cache on the live app: the shared test app redeployed with `cache:` on, in
process and on a real redis-server, each cached route asked twice (miss, then hit); then the
app goes back to TEST_ARGS (the cache is off by default, and other tests count model calls)."""

from __future__ import annotations

import time
import uuid

import pytest

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from cluster.redis_server import RedisServer
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.media import b64, png_image, speech_wav

pytestmark = pytest.mark.integration
CLIP_MODEL, WHISPER_MODEL, CHAT_MODEL = "clip-vit-b-32", "whisper-base", "smollm2-135m-instruct"


@pytest.fixture(scope="module", params=["memory", "redis"])
def cached_app(request, ray_cluster, app_url, tmp_path_factory):
    server = None
    cache = {"enabled": True, "chat": True}
    if request.param == "redis":
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        cache.update(server.cache_settings())
    config = app_config({**TEST_ARGS, "cache": cache}, None, ray_cluster.http_port,
                        name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
    try:
        yield request.param
    finally:
        deploy(ray_cluster)
        if server is not None:
            server.kill()


def twice(client, send) -> tuple:
    """Two answers to one request, once the redeployed ingress (the one with a cache) is the
    one answering: until then a response carries no X-Cache."""
    deadline = time.monotonic() + 60
    while True:
        nonce = uuid.uuid4().hex
        first = send(client, nonce)
        assert first.status_code == 200, first.text
        if "X-Cache" in first.headers or time.monotonic() > deadline:
            return first, send(client, nonce)
        time.sleep(1)


def test_each_cached_route_misses_then_hits(cached_app, client):
    first, second = twice(client, lambda c, nonce: c.post(
        "/v1/embeddings", json={"model": CLIP_MODEL, "input": [f"a photo of {nonce}", "a cat"]}))
    assert first.headers["X-Cache"] in ("miss", "partial") and second.headers["X-Cache"] == "hit"
    assert first.json()["data"] == second.json()["data"]

    image = b64(png_image((17, 90, 60)))
    image_body = {"model": CLIP_MODEL + "-image", "input": image, "encoding_format": "base64"}
    client.post("/v1/embeddings", json=image_body, headers={"Cache-Control": "no-cache"})
    hit = client.post("/v1/embeddings", json=image_body)
    assert hit.headers["X-Cache"] == "hit", hit.text
    as_floats = client.post("/v1/embeddings", json={**image_body, "encoding_format": "float"})
    assert as_floats.headers["X-Cache"] == "hit"
    assert len(as_floats.json()["data"][0]["embedding"]) == 512

    audio = speech_wav()
    answers = [client.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio,
                                                                       "audio/wav")},
                           data={"model": WHISPER_MODEL, "response_format": fmt},
                           headers={"Cache-Control": "no-cache"} if i == 0 else {})
               for i, fmt in enumerate(("json", "json", "text"))]
    assert [a.headers["X-Cache"] for a in answers] == ["bypass", "hit", "hit"]
    assert answers[0].json() == answers[1].json()
    assert answers[2].text.strip() == answers[0].json()["text"].strip()
    other = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio, "audio/wav")},
                        data={"model": WHISPER_MODEL, "language": "de"})
    assert other.headers["X-Cache"] == "miss"

    chat = {"model": CHAT_MODEL, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": f"Say {uuid.uuid4().hex[:6]}"}]}
    replies = [client.post("/v1/chat/completions", json=chat) for _ in range(2)]
    assert [r.headers["X-Cache"] for r in replies] == ["miss", "hit"]
    assert replies[0].json()["choices"] == replies[1].json()["choices"]
    sampled = client.post("/v1/chat/completions", json={**chat, "temperature": 0.8})
    assert sampled.headers["X-Cache"] == "bypass"

    media = [{"type": "text", "text": f"Describe {uuid.uuid4().hex[:6]}"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}},
             {"type": "input_audio", "input_audio": {"data": b64(audio), "format": "wav"}}]
    seen = {**chat, "messages": [{"role": "user", "content": media}]}
    replies = [client.post("/v1/chat/completions", json=seen) for _ in range(2)]
    assert [r.headers["X-Cache"] for r in replies] == ["miss", "hit"]
    assert replies[0].json()["choices"] == replies[1].json()["choices"]
    # The hit's key came before perception: no group was called (Server-Timing names none).
    assert [entry.split(";")[0] for entry in replies[1].headers["server-timing"].split(", ")] \
        == ["ingress", "total"]
