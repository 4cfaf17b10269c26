"""Tenants' limits on the live app (tenants/conftest.py: the app with a tenants file, buckets in a
real redis-server; the in-process buckets: tests/unit/test_token_buckets.py): a tenant past its
requests per minute gets a 429 whose Retry-After, honoured, lets the next request through;
tokens are charged and told in the headers; a key made or revoked in the file takes effect
within 10 s."""

from __future__ import annotations

import time

import pytest

from serve_app.tenant_keys import new_key, revoke
from serve_app.tenants import key_digest
from tests.integration.tenants.conftest import REQUESTS_PER_MINUTE, TOKENS_PER_MINUTE, bearer

pytestmark = pytest.mark.integration
CHAT_MODEL = "smollm2-135m-instruct"
KEY_CHANGE_S = 10.0


def test_a_tenant_past_its_requests_gets_429_and_retry_after_honoured_succeeds(
        tenants_app, client):
    key = tenants_app.keys["limited"]
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
    other = client.get("/v1/models", headers=bearer(tenants_app.keys["spare"]))
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def chat(stream: bool = False) -> dict:
    return {"model": CHAT_MODEL, "max_tokens": 8, "stream": stream,
            "messages": [{"role": "user", "content": "Name a colour."}]}


def test_a_chats_tokens_are_charged_and_told_in_the_headers(tenants_app, client):
    answer = client.post("/v1/chat/completions", headers=bearer(tenants_app.keys["tokens"]),
                         json=chat())
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]["total_tokens"]
    assert answer.headers["x-ratelimit-limit-tokens"] == str(TOKENS_PER_MINUTE)
    # the bucket was full; the answer's tokens were charged before its headers were written
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) == max(0, TOKENS_PER_MINUTE
                                                                      - used)


def test_a_streams_tokens_are_charged_at_its_end(tenants_app, client):
    key = tenants_app.keys["streamer"]
    with client.stream("POST", "/v1/chat/completions", headers=bearer(key),
                       json=chat(stream=True)) as stream:
        assert stream.status_code == 200
        assert stream.headers["x-ratelimit-remaining-tokens"] == str(TOKENS_PER_MINUTE)
        assert "[DONE]" in "".join(stream.iter_text())
    after = client.get("/v1/models", headers=bearer(key))
    assert after.status_code in (200, 429)  # 429: the stream overdrew the bucket
    assert int(after.headers["x-ratelimit-remaining-tokens"]) < TOKENS_PER_MINUTE


def test_a_new_key_works_and_a_revoked_key_stops_within_10_s(tenants_app, client):
    key = new_key(tenants_app.path, "spare")
    assert until(lambda: client.get("/v1/models", headers=bearer(key)).status_code == 200)
    revoke(tenants_app.path, key_digest(key))
    assert until(lambda: client.get("/v1/models", headers=bearer(key)).status_code == 401)
    assert client.get("/v1/models", headers=bearer(tenants_app.keys["spare"])).status_code == 200


def until(condition, within_s: float = KEY_CHANGE_S) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False
