"""Tenants on the routes, without Ray: the front end over real ReplicaGroups whose handles are
small fakes, so what each reply used is metered as on the live app."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from deployments.core.call_protocol import CompletionReply, ModelInfoReply
from deployments.core.config import AppConfig
from serve_app.calls import ReplicaGroup
from serve_app.frontend import FrontEnd
from serve_app.routes import build_api
from serve_app.tenants import key_digest

CHAT = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi?"}]}


class Answer:
    def __init__(self, value) -> None:
        self.value = value

    def cancel(self) -> None:
        pass

    def __await__(self):
        async def resolve():
            return self.value
        return resolve().__await__()


class Handle:
    """Each `.method.remote(*args)` answers `replies[method]`, and records the call context."""

    def __init__(self, replies: dict) -> None:
        self.replies, self.contexts = replies, []

    def __getattr__(self, method: str):
        handle = self

        class Method:
            def remote(self, *args):
                handle.contexts.append(args[-1])
                return Answer(handle.replies[method])

        return Method()


@pytest.fixture
def text():
    return Handle({"generate": CompletionReply("Hello.", 30, 5, "stop"),
                   "model_info": ModelInfoReply({})})


@pytest.fixture
def tenants_file(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(f"""tenants:
  - name: team-a
    key_sha256: [{key_digest("a-key")}]
    requests_per_minute: 2
    tokens_per_minute: 600
  - name: team-b
    key_sha256: [{key_digest("b-key")}]
    priority: batch
""")
    return path


def front_end(text: Handle, monkeypatch, **tenants) -> TestClient:
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    config = AppConfig(ingress={"tenants": tenants})
    other = Handle({"model_info": ModelInfoReply({})})
    groups = (ReplicaGroup("text", text), ReplicaGroup("vision", other),
              ReplicaGroup("audio", other))
    return TestClient(build_api(FrontEnd(config, *groups)))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_tenant_past_its_requests_per_minute_gets_a_429_with_its_headers(
        text, tenants_file, monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEYS", "plain-key")
    client = front_end(text, monkeypatch, file=str(tenants_file))
    first = client.post("/v1/chat/completions", json=CHAT, headers=bearer("a-key"))
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-remaining-tokens"] == "565"  # 600 - 35 used
    assert client.get("/v1/models", headers=bearer("a-key")).status_code == 200
    refused = client.get("/v1/models", headers=bearer("a-key"))
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) in range(29, 31)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    other = client.get("/v1/models", headers=bearer("plain-key"))
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def test_the_tenant_and_its_priority_go_with_every_replica_call(text, tenants_file,
                                                                 monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    client = front_end(text, monkeypatch, file=str(tenants_file))
    assert client.post("/v1/chat/completions", json=CHAT,
                       headers=bearer("b-key")).status_code == 200
    context = text.contexts[-1]
    assert (context.tenant, context.priority) == ("team-b", "batch")
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 401


def test_the_anonymous_api_is_as_before_no_tenant_no_limits_no_headers(text, monkeypatch):
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    client = front_end(text, monkeypatch)
    for _ in range(5):
        answer = client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200
        assert not [h for h in answer.headers if h.startswith("x-ratelimit")]
    assert (text.contexts[-1].tenant, text.contexts[-1].priority) == (None, "interactive")


@pytest.fixture
def with_admin(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(f"""tenants:
  - name: ops
    key_sha256: [{key_digest("ops-key")}]
    admin: true
  - name: team-a
    key_sha256: [{key_digest("a-key")}]
""")
    return path


def test_usage_is_for_admin_keys_and_counts_what_the_answers_reported(with_admin,
                                                                       monkeypatch):
    text = Handle({"generate": CompletionReply("Hello.", 30, 5, "stop",
                                               stages=[("queue", 0.0, 0.25),
                                                       ("model", 0.25, 0.5)]),
                   "model_info": ModelInfoReply({})})
    client = front_end(text, monkeypatch, file=str(with_admin))
    answers = [client.post("/v1/chat/completions", json=CHAT, headers=bearer("a-key"))
               for _ in range(2)]
    assert all(answer.status_code == 200 for answer in answers)
    assert client.get("/v1/usage").status_code == 401
    refused = client.get("/v1/usage", headers=bearer("a-key"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["type"] == "permission_error"
    usage = client.get("/v1/usage", headers=bearer("ops-key"))
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["object"] == "usage" and body["store"] == "replica"
    day = body["tenants"]["team-a"]["days"][0]
    assert day["requests"] == 3  # the two chats and the refused read of usage
    assert day["prompt_tokens"] == sum(a.json()["usage"]["prompt_tokens"] for a in answers)
    assert day["completion_tokens"] == sum(a.json()["usage"]["completion_tokens"]
                                           for a in answers)
    assert day["model_seconds"] == {"text": 1.0}
    assert body["tenants"]["team-a"]["hours"][0]["requests"] == 3


def test_calls_ask_for_their_stages_with_server_timing_off(text, monkeypatch):
    """Model seconds are metered from the stages, so a request's calls ask for them anyway."""
    monkeypatch.delenv("MMSERVE_API_KEYS", raising=False)
    monkeypatch.delenv("MMSERVE_TENANTS_FILE", raising=False)
    other = Handle({"model_info": ModelInfoReply({})})
    front = FrontEnd(AppConfig(observability={"server_timing": False}), ReplicaGroup(
        "text", text), ReplicaGroup("vision", other), ReplicaGroup("audio", other))
    answer = TestClient(build_api(front)).post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 200 and "server-timing" not in answer.headers
    assert text.contexts[-1].timed
