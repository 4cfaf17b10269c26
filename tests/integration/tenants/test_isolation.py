"""Nothing shared that should not be, on the live app: the shared test app redeployed with a
tenants file and the response cache on a real redis-server (its entries signed with a secret
from a file; the in-process store's namespaces: tests/unit/test_cache_namespaces.py). Tenant B
sending tenant A's input gets a miss (or, without the diagnostics, no X-Cache at all), a tenant
without the diagnostics sees neither X-Cache nor Server-Timing (nor a stream's final
server_timing), and two tenants that opted into the shared namespace share a hit. Then the app
goes back to TEST_ARGS (anonymous, cache off)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from cluster.redis_server import RedisServer
from serve_app.tenant_keys import new_key
from tests.conftest import APP_NAME, TEST_ARGS, deploy
from tests.integration.test_tenants import bearer, wait_for_keys

pytestmark = pytest.mark.integration
CLIP_MODEL, CHAT_MODEL = "clip-vit-b-32", "smollm2-135m-instruct"
DIAGNOSTICS = ("X-Cache", "Server-Timing")
TENANTS = {  # name -> its entry's fields beside its key
    "team-a": {"diagnostics": True},
    "team-b": {"diagnostics": True},
    "quiet": {},
    "pool-1": {"diagnostics": True, "cache_namespace": "shared"},
    "pool-2": {"diagnostics": True, "cache_namespace": "shared"},
}


def tenants_file(folder: Path) -> dict[str, str]:
    """The tenants file TENANTS describe, written to `folder`; each tenant's key."""
    path = folder / "tenants.yaml"
    keys = {name: new_key(path, name) for name in TENANTS}
    raw = yaml.safe_load(path.read_text())
    for entry in raw["tenants"]:
        entry.update(TENANTS[entry["name"]])
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.chmod(0o600)
    return keys


@pytest.fixture(scope="module")
def keys(ray_cluster, app_url, client, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tenants")
    made = tenants_file(folder)
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    cache = {"enabled": True, "chat": True, **server.cache_settings()}
    ingress = {**TEST_ARGS["ingress"], "tenants": {"file": str(folder / "tenants.yaml")}}
    config = app_config({**TEST_ARGS, "ingress": ingress, "cache": cache}, None,
                        ray_cluster.http_port, name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
    try:
        wait_for_keys(client, made["quiet"])
        yield made
    finally:
        deploy(ray_cluster)
        server.kill()


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
