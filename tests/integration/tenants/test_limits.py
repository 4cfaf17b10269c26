"""Tenants on the live app: the shared test app redeployed with a tenants file, its limits'
buckets in process and in a real redis-server; a tenant past its requests per minute gets a
429 whose Retry-After, honoured, lets the next request through; tokens are charged and told in
the headers; a key made or revoked in the file takes effect within 10 s. Then the app goes
back to TEST_ARGS (anonymous, as every other test expects)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from cluster.deploy import app_config
from cluster.deploy import deploy as deploy_config
from cluster.redis_server import RedisServer
from serve_app.tenant_keys import new_key, revoke
from serve_app.tenants import key_digest
from tests.conftest import APP_NAME, TEST_ARGS, deploy

pytestmark = pytest.mark.integration
CHAT_MODEL = "smollm2-135m-instruct"
REQUESTS_PER_MINUTE = 3  # one every 20 s
TOKENS_PER_MINUTE = 60  # one a second: a chat's tokens show in the bucket for a while
KEY_CHANGE_S = 10.0


@dataclass
class Tenants:
    path: Path
    keys: dict[str, str]  # tenant -> its key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tenants_file(folder: Path) -> Tenants:
    path = folder / "tenants.yaml"
    keys = {name: new_key(path, name) for name in ("limited", "tokens", "streamer", "spare")}
    raw = yaml.safe_load(path.read_text())
    limits = {"limited": {"requests_per_minute": REQUESTS_PER_MINUTE},
              "tokens": {"tokens_per_minute": TOKENS_PER_MINUTE},
              "streamer": {"tokens_per_minute": TOKENS_PER_MINUTE}, "spare": {}}
    for entry in raw["tenants"]:
        entry.update(limits[entry["name"]])
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    path.chmod(0o600)
    return Tenants(path, keys)


@pytest.fixture(scope="module", params=["memory", "redis"])
def tenants(request, ray_cluster, app_url, client, tmp_path_factory):
    server = None
    made = tenants_file(tmp_path_factory.mktemp("tenants"))
    args = {**TEST_ARGS, "ingress": {**TEST_ARGS["ingress"],
                                      "tenants": {"file": str(made.path)}}}
    if request.param == "redis":
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        args["cache"] = {**TEST_ARGS.get("cache", {}), "redis_url": server.url}
    config = app_config(args, None, ray_cluster.http_port, name=APP_NAME)
    deploy_config(f"http://127.0.0.1:{ray_cluster.ports['dashboard']}", config, 300)
    try:
        wait_for_keys(client, made.keys["spare"])
        yield made
    finally:
        deploy(ray_cluster)
        if server is not None:
            server.kill()


def wait_for_keys(client: httpx.Client, key: str) -> None:
    """Until the redeployed ingress (the one with tenants) is the one answering: the old one
    takes any request without a key."""
    deadline = time.monotonic() + 60
    in_a_row = 0
    while in_a_row < 5:
        assert time.monotonic() < deadline, "the ingress with tenants never answered"
        anonymous = client.get("/v1/models")
        in_a_row = in_a_row + 1 if anonymous.status_code == 401 else 0
        time.sleep(0.2)
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200


def test_a_tenant_past_its_requests_gets_429_and_retry_after_honoured_succeeds(tenants,
                                                                               client):
    key = tenants.keys["limited"]
    for remaining in range(REQUESTS_PER_MINUTE - 1, -1, -1):
        answer = client.get("/v1/models", headers=bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-ratelimit-limit-requests"] == str(REQUESTS_PER_MINUTE)
        assert answer.headers["x-ratelimit-remaining-requests"] == str(remaining)
    refused = client.get("/v1/models", headers=bearer(key))
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "limited is over its requests_per_minute" in refused.json()["error"]["message"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60 / REQUESTS_PER_MINUTE
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    time.sleep(retry_after)
    honoured = client.get("/v1/models", headers=bearer(key))
    assert honoured.status_code == 200, honoured.text
    other = client.get("/v1/models", headers=bearer(tenants.keys["spare"]))
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def chat(stream: bool = False) -> dict:
    return {"model": CHAT_MODEL, "max_tokens": 8, "stream": stream,
            "messages": [{"role": "user", "content": "Name a colour."}]}


def test_a_chats_tokens_are_charged_and_told_in_the_headers(tenants, client):
    answer = client.post("/v1/chat/completions", headers=bearer(tenants.keys["tokens"]),
                         json=chat())
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]["total_tokens"]
    assert answer.headers["x-ratelimit-limit-tokens"] == str(TOKENS_PER_MINUTE)
    # the bucket was full; the answer's tokens were charged before its headers were written
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) == max(0, TOKENS_PER_MINUTE
                                                                      - used)


def test_a_streams_tokens_are_charged_at_its_end(tenants, client):
    key = tenants.keys["streamer"]
    with client.stream("POST", "/v1/chat/completions", headers=bearer(key),
                       json=chat(stream=True)) as stream:
        assert stream.status_code == 200
        assert stream.headers["x-ratelimit-remaining-tokens"] == str(TOKENS_PER_MINUTE)
        assert "[DONE]" in "".join(stream.iter_text())
    after = client.get("/v1/models", headers=bearer(key))
    assert after.status_code in (200, 429)  # 429: the stream overdrew the bucket
    assert int(after.headers["x-ratelimit-remaining-tokens"]) < TOKENS_PER_MINUTE


def test_a_new_key_works_and_a_revoked_key_stops_within_10_s(tenants, client):
    key = new_key(tenants.path, "spare")
    assert until(lambda: client.get("/v1/models", headers=bearer(key)).status_code == 200)
    revoke(tenants.path, key_digest(key))
    assert until(lambda: client.get("/v1/models", headers=bearer(key)).status_code == 401)
    assert client.get("/v1/models", headers=bearer(tenants.keys["spare"])).status_code == 200


def until(condition, within_s: float = KEY_CHANGE_S) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False
