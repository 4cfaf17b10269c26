"""The load client as a tenant: every request sends the run's own key, and an open loop
retries the limits refusals of its last arrivals once, after their Retry-After, one per slot;
against a loopback server that admits as the ingress does (tests/unit/fake_ingress.py)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench.client_actor import ClientPlan, LoadClient, retry_slot
from bench.http_client import auth_headers
from bench.load import LoadSpec, client_plans
from bench.refusals import is_limits_refusal, was_admitted
from bench.workloads.base import EMBEDDING, RequestSpec
from serve_app.tenants import Tenant
from tests.unit.fake_ingress import FakeIngress

KEY = "key-of-team-a-0123456789"
ANSWER = {"object": "list", "data": [{"embedding": [0.0]}],
          "usage": {"prompt_tokens": 3, "total_tokens": 3}}


class OneText:
    name = "text-embedding"

    def next_request(self, rng: random.Random) -> RequestSpec:
        return RequestSpec(self.name, "/v1/embeddings", EMBEDDING,
                           json={"model": "m", "input": "a b c"})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def plan(**fields: Any) -> ClientPlan:
    return ClientPlan(**{"index": 0, "start_at": 0.0, "warmup_s": 5.0, "duration_s": 10.0,
                         "requests": None, "concurrency": 0, "seed": 0, "retry_refusals": 4,
                         "retry_window_s": 1.0, **fields})


def test_the_retry_slots_cut_the_last_arrivals_into_equal_parts():
    assert [retry_slot(offset, plan()) for offset in (13.99, 14.0, 14.5, 14.99, 15.0)] == [
        None, 0, 2, 3, None]
    assert retry_slot(14.5, plan(retry_refusals=0)) is None
    assert retry_slot(14.5, plan(duration_s=None)) is None


def test_the_retries_are_split_over_the_actors():
    spec = LoadSpec(concurrency=0, rate=10.0, duration_s=2.0, warmup_s=0.0,
                    retry_refusals=5, retry_window_s=0.5)
    plans = client_plans(spec, 2, start_at=0.0)
    assert [p.retry_refusals for p in plans] == [3, 2]
    assert {p.retry_window_s for p in plans} == {0.5}


def test_a_runs_own_key_goes_before_the_environments(monkeypatch):
    monkeypatch.setenv("MMSERVE_API_KEY", "from-the-environment")
    assert auth_headers(KEY) == {"Authorization": f"Bearer {KEY}"}
    assert auth_headers() == {"Authorization": "Bearer from-the-environment"}
    monkeypatch.delenv("MMSERVE_API_KEY")
    assert auth_headers() == {}


def test_the_first_limits_refusal_of_each_final_slot_is_retried_once_with_the_runs_key():
    tenant = Tenant(name="team-a", requests_per_minute=2)  # a bucket of 2 that never refills
    with FakeIngress(tenant, clock=lambda: 0.0, admitted_body=ANSWER, retry_after="0") as app:
        client = LoadClient(app.url, OneText(), timeout_s=10.0, api_key=KEY)
        arrivals = [i * 0.02 for i in range(10)]  # the last 0.1 s: two slots of 0.05 s
        start = time.time()
        client_plan = ClientPlan(0, start, 0.0, 0.2, None, 0, 0, arrivals,
                                 retry_refusals=2, retry_window_s=0.1)
        records = asyncio.run(client.run(client_plan))
        authorizations = app.authorizations
    first, retries = [r for r in records if not r["retry"]], [r for r in records if r["retry"]]
    assert len(first) == 10 and len(retries) == 2
    assert set(authorizations) == {f"Bearer {KEY}"} and len(authorizations) == 12
    admitted = [r for r in client.records if was_admitted(r) and not r.retry]
    assert len(admitted) == 2 and all(r.usage == ANSWER["usage"] for r in admitted)
    assert all(is_limits_refusal(r) for r in client.records if r.retry)
    # each retry follows a refusal of the final 0.1 s, not one of the earlier arrivals
    assert all(r["start"] >= start + 0.1 for r in retries)
