"""One tenant's figures from its records: what its limits let in and refused in the measured
window, at what rate, its retries, what its clients were told it used, and the ingress
replicas that counted it."""

from __future__ import annotations

import pytest

from bench.prometheus import Sample
from bench.records import RequestRecord
from bench.tenant_figures import (
    TENANT_REQUESTS,
    add_told,
    requests_by_replica,
    tenant_figures,
    told_usage,
)

LIMIT = {"x-ratelimit-limit-requests": "600"}
REFUSAL = '{"error": {"message": "team-a is over its requests_per_minute (600); retry in 1 s"}}'


def ok(start: float, route: str = "text-embedding", usage: dict | None = None, items: int = 1,
       audio: float | None = None, **flags) -> RequestRecord:
    return RequestRecord(route=route, start=start, status=200, end=0.2, headers=dict(LIMIT),
                         usage=usage or {}, items=items, audio_duration_s=audio, **flags)


def refused(start: float, retry_after: str | None = "1", **flags) -> RequestRecord:
    return RequestRecord(route="text-embedding", start=start, status=429, end=0.01,
                         error=REFUSAL, retry_after=retry_after, headers=dict(LIMIT), **flags)


def shed(start: float, status: int = 503) -> RequestRecord:
    return RequestRecord(route="text-embedding", start=start, status=status, end=0.01,
                         error='{"error": {"message": "the server is at capacity"}}')


def test_the_clients_are_told_what_the_admitted_and_answered_requests_used():
    records = [ok(0, usage={"prompt_tokens": 7, "total_tokens": 7}),
               ok(0, route="chat", usage={"prompt_tokens": 20, "completion_tokens": 9}),
               ok(0, route="image-embedding", items=3, usage={"prompt_tokens": 0}),
               ok(0, route="transcription", audio=4.5),
               refused(0), shed(0),
               RequestRecord(route="chat", start=0, status=0, error="timed out"),
               RequestRecord(route="chat", start=0, status=504, end=1.0, headers=dict(LIMIT),
                             error="deadline")]
    assert told_usage(records) == {"requests": 5, "prompt_tokens": 27, "completion_tokens": 9,
                                   "images": 3, "audio_seconds": 4.5, "no_response": 1}


def test_told_usage_adds_up():
    assert add_told({"requests": 2, "images": 1}, {"requests": 3, "audio_seconds": 2.0}) == {
        "requests": 5, "images": 1, "audio_seconds": 2.0}


def test_the_window_counts_admissions_and_refusals_sent_in_it_only():
    window_start, window_s = 1000.0, 10.0
    records = [ok(995.0, usage={"prompt_tokens": 50}, warmup=True), refused(996.0, warmup=True),
               *[ok(1000.0 + i, usage={"prompt_tokens": 10}) for i in range(5)],
               refused(1000.4), refused(1003.0, retry_after=None), shed(1004.0),
               ok(1011.0, retry=True), refused(1011.5, retry=True)]
    figures = tenant_figures(records, window_start, window_s)
    assert figures["measured"] == 8 and figures["sent"] == 12
    assert figures["admitted"] == 5 and figures["ok"] == 5
    assert figures["accepted_requests_per_s"] == pytest.approx(0.5)
    assert figures["accepted_tokens_per_s"] == pytest.approx(5.0)
    assert figures["limits_refusals"] == 2 and figures["refusals_with_retry_after"] == 1
    assert figures["shed"] == 1 and figures["shed_by_status"] == {"503": 1}
    assert figures["first_refusal_s"] == pytest.approx(0.4)
    assert figures["retries"] == {"sent": 2, "admitted": 1, "ok": 1, "refused": 1}
    assert figures["told"]["requests"] == 7  # warm-up and the retry too: the app counts them


def test_a_closed_loop_without_a_window_has_no_rates():
    figures = tenant_figures([ok(0.0)], 0.0, None)
    assert figures["accepted_requests_per_s"] is None and figures["first_refusal_s"] is None


def sample(tenant: str, replica: str, value: float) -> Sample:
    return Sample(TENANT_REQUESTS, {"tenant": tenant, "replica": replica,
                                    "deployment": "Ingress"}, value)


def test_each_ingress_replica_counts_what_it_admitted_between_the_scrapes():
    before = [sample("a", "r1", 10), sample("a", "r2", 4), sample("b", "r1", 100)]
    after = [sample("a", "r1", 30), sample("a", "r2", 9), sample("a", "r3", 2),
             sample("b", "r1", 150)]
    assert requests_by_replica(before, after, "a") == {"r1": 20, "r2": 5, "r3": 2}
    # a replica that restarted counts from zero
    assert requests_by_replica([sample("a", "r1", 10)], [sample("a", "r1", 3)], "a") == {
        "r1": 3}
