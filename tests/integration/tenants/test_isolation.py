"""Nothing shared that should not be, on the live app (tenants/conftest.py: the app with a
tenants file and the response cache on a real redis-server, its entries signed; the in-process
store's namespaces: tests/unit/test_cache_namespaces.py). Tenant B sending tenant A's input gets
a miss (or, without the diagnostics, no X-Cache at all), a tenant without the diagnostics sees
neither X-Cache nor Server-Timing (nor a stream's final server_timing), and two tenants that
opted into the shared namespace share a hit."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.tenants.conftest import bearer

pytestmark = pytest.mark.integration
CLIP_MODEL, CHAT_MODEL = "clip-vit-b-32", "smollm2-135m-instruct"
DIAGNOSTICS = ("X-Cache", "Server-Timing")


@pytest.fixture
def keys(tenants_app) -> dict[str, str]:
    return tenants_app.keys


def embed(client, key: str, text: str):
    answer = client.post("/v1/embeddings", headers=bearer(key),
                         json={"model": CLIP_MODEL, "input": text})
    assert answer.status_code == 200, answer.text
    return answer


def test_tenant_b_sending_tenant_as_input_gets_a_miss(keys, client):
    memo = f"the merger closes on {uuid.uuid4().hex}"
    assert embed(client, keys["team-a"], memo).headers["X-Cache"] == "miss"
    assert embed(client, keys["team-a"], memo).headers["X-Cache"] == "hit"
    assert embed(client, keys["team-b"], memo).headers["X-Cache"] == "miss"
    assert "X-Cache" not in embed(client, keys["quiet"], memo).headers

    chat = {"model": CHAT_MODEL, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": f"Say {uuid.uuid4().hex[:6]}"}]}
    states = [client.post("/v1/chat/completions", headers=bearer(keys[name]),
                          json=chat).headers["X-Cache"]
              for name in ("team-a", "team-b", "team-a")]
    assert states == ["miss", "miss", "hit"]


def test_a_tenant_without_diagnostics_sees_neither_x_cache_nor_server_timing(keys, client):
    text = f"a quiet input {uuid.uuid4().hex}"
    answers = [embed(client, keys["quiet"], text) for _ in range(2)]
    answers.append(client.get("/v1/models", headers=bearer(keys["quiet"])))
    for answer in answers:
        assert not [h for h in DIAGNOSTICS if h in answer.headers], answer.request.url
    shown = embed(client, keys["team-a"], text)
    assert all(h in shown.headers for h in DIAGNOSTICS)

    body = {"model": CHAT_MODEL, "max_tokens": 4, "stream": True,
            "messages": [{"role": "user", "content": "Count to three."}]}
    for name, told in (("quiet", False), ("team-a", True)):
        with client.stream("POST", "/v1/chat/completions", headers=bearer(keys[name]),
                           json=body) as stream:
            assert stream.status_code == 200
            events = [line.removeprefix("data: ") for line in stream.iter_lines()
                      if line.startswith("data: ")]
        assert ("Server-Timing" in stream.headers) is told, name
        final = json.loads(events[-2])
        assert final["choices"][0]["finish_reason"] is not None
        assert ("server_timing" in final) is told, name


def test_tenants_in_the_shared_namespace_share_a_hit(keys, client):
    text = f"a shared input {uuid.uuid4().hex}"
    assert embed(client, keys["pool-1"], text).headers["X-Cache"] == "miss"
    assert embed(client, keys["pool-2"], text).headers["X-Cache"] == "hit"
    assert embed(client, keys["team-a"], text).headers["X-Cache"] == "miss"
