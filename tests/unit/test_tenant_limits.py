"""A tenant's limits at the ingress: admission (requests taken, the other buckets asked to be
above zero, requests in flight), what a request is charged once it has ended, and what each
replica reply counts as used."""

from __future__ import annotations

import asyncio
import contextvars
import functools

import numpy as np
import pytest

from deployments.core.call_protocol import (
    CompletionReply,
    EmbeddingsReply,
    LabelsReply,
    ModelInfoReply,
    StreamEnd,
    TokenDelta,
    TranscriptReply,
)
from deployments.core.config import load_config
from deployments.core.errors import RateLimited
from serve_app import request_tenant
from serve_app.http_errors import error_response, reason_of
from serve_app.redis_buckets import RedisBuckets
from serve_app.request_tenant import StreamMeter, Usage, usage_of
from serve_app.tenant_limits import TenantLimits, make_buckets
from serve_app.tenants import Tenant
from serve_app.token_buckets import MemoryBuckets
from tests.unit.fake_clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock(100.0)


@pytest.fixture
def limits(clock):
    return TenantLimits(MemoryBuckets(clock))


def run(coroutine):
    return asyncio.run(coroutine)


TEAM = Tenant(name="team-a", requests_per_minute=2, tokens_per_minute=600,
              images_per_minute=60, audio_seconds_per_minute=120)


def test_an_anonymous_request_has_no_limits_and_no_headers(limits):
    admission = run(limits.admit(None))
    assert admission.refusal is None and admission.headers() == {}
    run(limits.settle(admission, Usage(prompt_tokens=10**9)))


def test_an_unlimited_tenant_draws_nothing_and_gets_no_headers(limits):
    admission = run(limits.admit(Tenant(name="default")))
    assert admission.refusal is None and admission.headers() == {}
    assert limits.buckets.buckets == {}


def test_requests_past_the_limit_get_a_429_with_retry_after_and_headers(limits, clock):
    for remaining in ("1", "0"):
        admission = run(limits.admit(TEAM))
        assert admission.refusal is None
        assert admission.headers()["x-ratelimit-remaining-requests"] == remaining
    refused = run(limits.admit(TEAM))
    error = refused.refusal
    assert isinstance(error, RateLimited) and reason_of(error) == "rate_limited"
    assert "team-a is over its requests_per_minute (2); retry in 30 s" == error.message
    response = error_response(error)
    assert response.status_code == 429 and response.headers["retry-after"] == "30"
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers()["x-ratelimit-reset-requests"] == "1m0s"
    clock.now += 30
    assert run(limits.admit(TEAM)).refusal is None


def test_every_limit_of_the_tenant_has_its_headers(limits):
    headers = run(limits.admit(TEAM)).headers()
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-limit-tokens"] == "600"
    assert headers["x-ratelimit-remaining-tokens"] == "600"
    assert headers["x-ratelimit-reset-tokens"] == "0s"
    assert {"x-ratelimit-limit-images", "x-ratelimit-limit-audio-seconds"} <= set(headers)


def test_tokens_are_charged_at_the_end_and_then_hold_the_next_request(limits, clock):
    tenant = Tenant(name="team-a", tokens_per_minute=600)
    admission = run(limits.admit(tenant))
    run(limits.settle(admission, Usage(prompt_tokens=600, completion_tokens=100)))
    assert admission.headers()["x-ratelimit-remaining-tokens"] == "0"
    refused = run(limits.admit(tenant)).refusal
    assert "tokens_per_minute (600)" in refused.message
    assert refused.retry_after_s == pytest.approx(10.0)  # 100 below zero at ten a second
    clock.now += 10.5
    assert run(limits.admit(tenant)).refusal is None


def test_images_and_audio_seconds_are_charged_to_their_own_buckets(limits):
    admission = run(limits.admit(TEAM))
    run(limits.settle(admission, Usage(prompt_tokens=5, images=3, audio_seconds=150.5)))
    headers = admission.headers()
    assert headers["x-ratelimit-remaining-images"] == "57"
    assert headers["x-ratelimit-remaining-audio-seconds"] == "0"
    assert "audio_seconds_per_minute" in run(limits.admit(TEAM)).refusal.message


def test_a_request_is_settled_once(limits):
    tenant = Tenant(name="team-a", tokens_per_minute=600)
    admission = run(limits.admit(tenant))
    run(limits.settle(admission, Usage(completion_tokens=100)))
    run(limits.settle(admission, Usage(completion_tokens=100)))
    assert admission.headers()["x-ratelimit-remaining-tokens"] == "500"


def test_max_concurrent_counts_requests_in_flight_until_they_settle(limits):
    tenant = Tenant(name="team-a", max_concurrent=2)
    first, second = run(limits.admit(tenant)), run(limits.admit(tenant))
    refused = run(limits.admit(tenant)).refusal
    assert refused is not None and "2 requests in flight" in refused.message
    assert refused.retry_after_s == 1.0
    assert run(limits.admit(Tenant(name="team-b", max_concurrent=1))).refusal is None
    run(limits.settle(first, Usage()))
    third = run(limits.admit(tenant))
    assert third.refusal is None
    for admission in (second, third):
        run(limits.settle(admission, Usage()))
    assert limits.in_flight == {"team-b": 1}


class SlowBuckets(MemoryBuckets):
    """Buckets whose draw yields to the event loop first, as a round trip to Redis does."""

    async def draw(self, draws):
        await asyncio.sleep(0)
        return self.draw_now(draws)


def test_requests_admitted_at_once_cannot_pass_max_concurrent_together(clock):
    limits = TenantLimits(SlowBuckets(clock))
    tenant = Tenant(name="team-a", max_concurrent=1, requests_per_minute=60)

    async def both():
        return await asyncio.gather(limits.admit(tenant), limits.admit(tenant))

    admitted = [a.refusal is None for a in run(both())]
    assert sorted(admitted) == [False, True]
    assert limits.in_flight == {"team-a": 1}


def test_a_refused_request_holds_no_slot_and_owes_nothing(limits):
    tenant = Tenant(name="team-a", requests_per_minute=1, tokens_per_minute=60,
                    max_concurrent=5)
    run(limits.settle(run(limits.admit(tenant)), Usage()))
    refused = run(limits.admit(tenant))
    assert refused.refusal is not None
    run(limits.settle(refused, Usage(prompt_tokens=1000)))
    assert limits.in_flight == {}
    level, _ = limits.buckets.buckets["team-a", "tokens"]
    assert level == 60


def test_a_stream_frees_its_slot_at_once_and_is_charged_in_a_task_of_its_own(limits):
    tenant = Tenant(name="team-a", tokens_per_minute=600, max_concurrent=1)

    async def scenario():
        admission = await limits.admit(tenant)
        limits.settle_later(admission, Usage(prompt_tokens=50, completion_tokens=10))
        freed = limits.in_flight == {}
        before = admission.headers()["x-ratelimit-remaining-tokens"]
        await asyncio.sleep(0)  # the charge's task runs
        return freed, before, admission.headers()["x-ratelimit-remaining-tokens"]

    assert run(scenario()) == (True, "600", "540")


# -- what a reply counts as used ------------------------------------------------------------


@pytest.mark.parametrize("method, args, reply, used", [
    ("generate", (), CompletionReply("hi", 9, 3, "stop"),
     Usage(prompt_tokens=9, completion_tokens=3)),
    ("stream", (), StreamEnd(7, 2, "stop"), Usage(prompt_tokens=7, completion_tokens=2)),
    ("transcribe", (b"", None), TranscriptReply("hi", "en", 1.0, 12.5, []),
     Usage(audio_seconds=12.5)),
    ("classify", (b"", []), LabelsReply([]), Usage(images=1)),
    ("embed_images", ([b"1", b"2"],), EmbeddingsReply([np.zeros(2)] * 2), Usage(images=2)),
    ("embed_texts", (["a photo of a cat", "dog"],), EmbeddingsReply([np.zeros(2)] * 2),
     Usage(prompt_tokens=6)),
    ("model_info", (), ModelInfoReply({}), Usage()),
])
def test_each_reply_counts_what_it_used(method, args, reply, used):
    assert usage_of("text", method, args, reply) == used


def test_a_replys_model_stages_count_as_its_groups_model_seconds():
    batched = EmbeddingsReply([np.zeros(2)], stages=[
        ("queue", 0.0, 0.5), ("batch", 0.5, 0.01), ("model", 0.51, 0.25), ("replica", 0.0, 0.1)])
    assert usage_of("vision", "embed_images", ([b"1"],), batched) == Usage(
        images=1, model_seconds={"vision": 0.25})
    streamed = StreamEnd(7, 2, "stop", stages=[
        ("first-token", 0.0, 0.125), ("decode", 0.125, 1.0), ("replica", 0.0, 0.01)])
    used = usage_of("text", "stream", (), streamed)
    assert used.model_seconds == {"text": 1.125}
    total = Usage()
    for usage in (used, used, Usage(model_seconds={"audio": 2.0})):
        total.add(usage)
    assert total.model_seconds == {"text": 2.25, "audio": 2.0}
    assert total.counts() == {"prompt_tokens": 14, "completion_tokens": 4,
                              "model_seconds.text": 2.25, "model_seconds.audio": 2.0}


def in_own_context(test):
    """Runs `test` in a copy of the context: the request's tenant it starts does not outlive
    it (every later test in this process would otherwise run as that request)."""
    @functools.wraps(test)
    def run_it(*args, **kwargs):
        return contextvars.copy_context().run(test, *args, **kwargs)
    return run_it


@in_own_context
def test_a_finished_stream_counts_its_end_and_a_stopped_one_its_pieces():
    finished = request_tenant.start(TEAM)
    meter = StreamMeter(finished, "text")
    for item in (TokenDelta("a"), TokenDelta("b"),
                 StreamEnd(10, 2, "stop", stages=[("decode", 0.0, 0.5)])):
        meter.seen(item)
    meter.stopped()
    assert finished.usage == Usage(prompt_tokens=10, completion_tokens=2,
                                   model_seconds={"text": 0.5})
    stopped = request_tenant.start(TEAM)
    meter = StreamMeter(stopped, "text")
    for item in (TokenDelta("a"), TokenDelta("b"), TokenDelta("c")):
        meter.seen(item)
    meter.stopped()
    meter.stopped()
    assert stopped.usage == Usage(completion_tokens=3)


@in_own_context
def test_the_request_tenant_carries_its_name_priority_and_weight():
    batch = request_tenant.start(Tenant(name="team-b", priority="batch", weight=3.0))
    assert request_tenant.current() is batch
    assert (batch.name, batch.priority, batch.weight) == ("team-b", "batch", 3.0)
    anonymous = request_tenant.start(None)
    assert (anonymous.name, anonymous.priority, anonymous.weight) == (None, "interactive", 1.0)


# -- where the buckets are kept ---------------------------------------------------------------


def test_buckets_are_in_process_without_a_redis_url():
    assert isinstance(make_buckets(load_config({})), MemoryBuckets)


def test_buckets_are_in_the_apps_redis_with_its_credentials(monkeypatch):
    monkeypatch.setenv("LIMITS_REDIS_PASSWORD", "s3cret")
    shared = make_buckets(load_config({
        "ingress": {"tenants": {"key_prefix": "x:limits"}},
        "cache": {"redis_url": "redis://127.0.0.1:1/3", "redis_username": "limits",
                  "redis_password": {"env": "LIMITS_REDIS_PASSWORD"}}}))
    assert isinstance(shared, RedisBuckets) and shared.key_prefix == "x:limits"
    kwargs = shared.client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (3, "limits", "s3cret")


