"""What the bench reads from an answer to a tenant: admitted, refused by its limits, or shed by
the app, told apart on the app's own answers (the refusal messages TenantLimits writes, the
ingress's overload, the x-ratelimit-* headers)."""

from __future__ import annotations

import asyncio
import json

from bench.records import RequestRecord
from bench.refusals import (
    is_limits_refusal,
    retry_after_s,
    was_admitted,
    was_asked_limits,
    was_shed,
)
from deployments.core.errors import Overloaded, ServeError, Unavailable
from serve_app.http_errors import error_body, error_headers, status_of
from serve_app.tenant_limits import TenantLimits
from serve_app.tenants import Tenant
from serve_app.token_buckets import MemoryBuckets


def answered(error: ServeError, headers: dict[str, str] | None = None) -> RequestRecord:
    """The record of an answer carrying the app's error, as the bench's client makes it."""
    return RequestRecord(route="r", start=0.0, status=status_of(error),
                         error=json.dumps(error_body(error)),
                         retry_after=error_headers(error).get("Retry-After"),
                         headers=headers or {}, end=0.1)


def refusal_of(tenant: Tenant, admitted_first: int) -> tuple[ServeError, dict[str, str]]:
    async def admit_until_refused():
        limits = TenantLimits(MemoryBuckets(lambda: 50.0))
        for _ in range(admitted_first):
            assert (await limits.admit(tenant)).refusal is None
        return await limits.admit(tenant)
    admission = asyncio.run(admit_until_refused())
    assert admission.refusal is not None
    return admission.refusal, admission.headers()


def test_a_tenant_over_its_requests_per_minute_is_a_limits_refusal_with_retry_after():
    error, headers = refusal_of(Tenant(name="team-a", requests_per_minute=2), 2)
    record = answered(error, headers)
    assert is_limits_refusal(record) and not was_admitted(record) and not was_shed(record)
    assert was_asked_limits(record)
    assert retry_after_s(record) >= 1


def test_a_tenant_at_its_max_concurrent_is_a_limits_refusal():
    error, headers = refusal_of(Tenant(name="team-a", max_concurrent=1), 1)
    assert is_limits_refusal(answered(error, headers))


def test_the_ingress_full_for_the_class_is_shed_and_not_admitted():
    record = answered(Overloaded("the server is at capacity; retry later", retry_after_s=2))
    assert record.status == 429
    assert was_shed(record) and not is_limits_refusal(record) and not was_admitted(record)


def test_a_503_after_admission_is_shed_and_admitted():
    record = answered(Unavailable("no replica", retry_after_s=5),
                      {"x-ratelimit-limit-requests": "600"})
    assert was_shed(record) and was_admitted(record)


def test_an_answer_without_the_tenants_headers_was_never_admitted():
    assert not was_admitted(RequestRecord(route="r", start=0.0, status=200, end=0.1))
    assert was_admitted(RequestRecord(route="r", start=0.0, status=200, end=0.1,
                                      headers={"x-ratelimit-limit-tokens": "3000"}))


def test_retry_after_is_read_as_seconds_or_not_at_all():
    def record(value):
        return RequestRecord(route="r", start=0.0, retry_after=value)
    assert retry_after_s(record("2")) == 2.0
    assert retry_after_s(record(None)) is None
    assert retry_after_s(record("Wed, 21 Oct 2015 07:28:00 GMT")) is None
    assert retry_after_s(record("-1")) is None
