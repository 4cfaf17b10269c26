"""The tenants suite's own requests against a loopback server that admits as the ingress does
(tests/unit/fake_ingress.py): emptying a tenant's requests bucket and keeping it empty until a
moment, and waiting until the answers tell a limit."""

from __future__ import annotations

import time

import pytest

from bench.refusals import is_limits_refusal, was_admitted
from bench.tenant_api import BucketKeeper, empty_requests_bucket, wait_for_limit
from bench.tenant_figures import told_usage
from serve_app.tenants import Tenant
from tests.unit.fake_ingress import FakeIngress

KEY = "key-of-team-a-0123456789"
TEAM = Tenant(name="team-a", requests_per_minute=25)


def frozen() -> float:
    return 10.0


def test_emptying_a_bucket_takes_exactly_what_it_holds_then_stops():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        records = empty_requests_bucket(app.url, KEY, workers=4)
    assert sum(was_admitted(r) for r in records) == 25
    assert any(is_limits_refusal(r) for r in records)
    assert told_usage(records)["requests"] == 25  # each GET admitted counts in its usage


def test_the_keeper_keeps_the_bucket_empty_until_the_moment_named():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        with BucketKeeper(app.url, KEY, requests_per_s=50.0) as keeper:
            emptied = len(keeper.records)
            deadline = time.time() + 0.3
            keeper.stop_at(deadline)
            keeper.thread.join(timeout=5)
            assert not keeper.thread.is_alive()
    kept = keeper.records[emptied:]
    assert kept and all(is_limits_refusal(r) for r in kept)
    assert all(r.start <= deadline for r in kept)


def test_a_limit_is_in_force_once_answers_in_a_row_tell_it():
    with FakeIngress(TEAM, frozen, admitted_status=403) as app:
        records = wait_for_limit(app.url, KEY, 25, in_a_row=3)
        assert len(records) == 3
        with pytest.raises(TimeoutError):
            wait_for_limit(app.url, KEY, 26, in_a_row=3, timeout_s=0.3)
