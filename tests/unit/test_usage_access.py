"""Who may read GET /v1/usage, as the route decides it: the request's key is checked first (no
key or an unknown one: 401), then its tenant must be an admin (else 403, JSON); what one
request used is counted for its tenant, the anonymous API's as `anonymous`, in the totals and
on the ray_mmserve_tenant_* counters."""

from __future__ import annotations

import asyncio
import json

import pytest

from deployments.core.errors import ServeError
from deployments.replicas import metrics
from serve_app.auth import authenticate
from serve_app.http_errors import error_response, reason_of
from serve_app.key_directory import KeyDirectory
from serve_app.request_tenant import Usage
from serve_app.tenant_usage import ANONYMOUS, TenantUsage, count_in_metrics, require_admin
from serve_app.tenants import key_digest
from serve_app.usage_ledger import MemoryUsageLedger


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "tenants.yaml"
    path.write_text(f"""tenants:
  - name: ops
    key_sha256: [{key_digest("ops-key")}]
    admin: true
  - name: team-a
    key_sha256: [{key_digest("a-key")}]
""")
    return KeyDirectory(["plain-key"], path)


def reader(authorization: str | None, directory: KeyDirectory) -> str:
    """What the route does before it answers: the key's tenant, then the admin check."""
    tenant = authenticate(authorization, directory)
    require_admin(tenant)
    return tenant.name


def refusal(authorization: str | None, directory: KeyDirectory) -> tuple[int, dict]:
    with pytest.raises(ServeError) as caught:
        reader(authorization, directory)
    response = error_response(caught.value)
    return response.status_code, json.loads(response.body)["error"]


def test_an_admin_tenants_key_may_read_usage(directory):
    assert reader("Bearer ops-key", directory) == "ops"


def test_another_tenants_key_gets_a_403_in_json(directory):
    status, error = refusal("Bearer a-key", directory)
    assert status == 403 and error["type"] == "permission_error"
    assert "team-a may not read /v1/usage" in error["message"]


def test_a_plain_key_is_not_an_admin(directory):
    status, error = refusal("Bearer plain-key", directory)
    assert status == 403 and "default may not read" in error["message"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Basic ops-key", "Bearer nope"])
def test_no_key_or_a_wrong_one_is_a_401_before_the_admin_check(directory, authorization):
    status, error = refusal(authorization, directory)
    assert status == 401 and error["type"] == "authentication_error"


def test_the_anonymous_api_has_no_admin():
    with pytest.raises(ServeError) as caught:
        require_admin(authenticate(None, KeyDirectory([])))
    assert error_response(caught.value).status_code == 403
    assert reason_of(caught.value) == "forbidden"
    assert "this API is anonymous" in caught.value.message


@pytest.fixture
def metrics_off():
    """Ray's metrics need a Ray worker: off here, as `observability.metrics: false` makes them."""
    metrics.set_enabled(False)
    yield
    metrics.set_enabled(True)


def test_a_request_counts_for_its_tenant_and_the_anonymous_api_as_anonymous(directory,
                                                                            metrics_off):
    ledger = MemoryUsageLedger(24, 7, clock=lambda: 1_796_000_000.0)
    usage = TenantUsage(ledger)
    team_a = authenticate("Bearer a-key", directory)
    usage.record(team_a, Usage(prompt_tokens=30, completion_tokens=5,
                               model_seconds={"text": 0.5}))
    usage.record(team_a, Usage())
    usage.record(None, Usage(images=2))
    tenants = asyncio.run(ledger.report())["tenants"]
    assert list(tenants) == [ANONYMOUS, "team-a"]
    day = tenants["team-a"]["days"][0]
    assert (day["requests"], day["prompt_tokens"], day["completion_tokens"]) == (2, 30, 5)
    assert day["model_seconds"] == {"text": 0.5}
    assert tenants[ANONYMOUS]["days"][0]["images"] == 2


class Counter:
    """What ray.util.metrics.Counter is asked: (amount, tags) per inc; it refuses amount <= 0."""

    def __init__(self) -> None:
        self.incs: list[tuple[float, dict]] = []

    def inc(self, amount: float, tags: dict) -> None:
        assert amount > 0
        self.incs.append((amount, tags))


def test_one_requests_counts_go_to_the_counters_labelled_by_tenant(monkeypatch):
    counters = {name: Counter() for name in ("tenant_requests", "tenant_tokens", "tenant_images",
                                             "tenant_audio_seconds", "tenant_model_seconds")}
    for name, counter in counters.items():
        monkeypatch.setattr(metrics, name, lambda counter=counter: counter)
    count_in_metrics("team-a", {"requests": 1, "prompt_tokens": 30, "completion_tokens": 5,
                                "audio_seconds": 12.5, "model_seconds.text": 0.5,
                                "model_seconds.audio": 1.5})
    team = {"tenant": "team-a"}
    assert counters["tenant_requests"].incs == [(1, team)]
    assert counters["tenant_tokens"].incs == [(30, {**team, "kind": "prompt"}),
                                              (5, {**team, "kind": "completion"})]
    assert counters["tenant_images"].incs == []
    assert counters["tenant_audio_seconds"].incs == [(12.5, team)]
    assert counters["tenant_model_seconds"].incs == [(0.5, {**team, "group": "text"}),
                                                     (1.5, {**team, "group": "audio"})]
