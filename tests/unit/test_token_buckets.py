"""The token buckets' arithmetic, in process with an injected clock, and the x-ratelimit-*
headers and Retry-After it gives."""

from __future__ import annotations

import asyncio

import pytest

from deployments.core.errors import RateLimited
from serve_app.http_errors import error_headers
from serve_app.rate_limit_headers import duration, rate_limit_headers
from serve_app.token_buckets import CHARGE, DEBT, TAKE, BucketLevel, Draw, MemoryBuckets
from tests.unit.fake_clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock(500.0)


@pytest.fixture
def buckets(clock):
    return MemoryBuckets(clock)


def draw(buckets: MemoryBuckets, *draws: Draw):
    return asyncio.run(buckets.draw(draws))


REQUESTS = Draw("team-a", "requests", 60)  # one a second
TOKENS_DEBT = Draw("team-a", "tokens", 600, 0, DEBT)  # ten a second


def charge(tokens: float) -> Draw:
    return Draw("team-a", "tokens", 600, tokens, CHARGE)


def test_a_full_bucket_gives_a_minutes_worth_then_refuses(buckets):
    for left in range(59, -1, -1):
        outcome = draw(buckets, REQUESTS)
        assert outcome.allowed and outcome.levels[0].remaining() == left
    refused = draw(buckets, REQUESTS)
    assert not refused.allowed
    assert refused.wait_s == pytest.approx(1.0) and refused.refused_by == "requests"


def test_the_bucket_refills_at_its_rate_up_to_its_size(buckets, clock):
    for _ in range(60):
        draw(buckets, REQUESTS)
    clock.now += 0.5
    refused = draw(buckets, REQUESTS)
    assert not refused.allowed and refused.wait_s == pytest.approx(0.5)
    clock.now += 0.5
    assert draw(buckets, REQUESTS).allowed
    clock.now += 3600
    assert draw(buckets, REQUESTS).levels[0].level == pytest.approx(59)


def test_a_refused_draw_takes_nothing(buckets, clock):
    for _ in range(60):
        draw(buckets, REQUESTS)
    for _ in range(5):
        assert not draw(buckets, REQUESTS).allowed
    clock.now += 1.0
    assert draw(buckets, REQUESTS).allowed


def test_tokens_charged_after_may_go_below_zero_and_block_until_refilled(buckets, clock):
    assert draw(buckets, REQUESTS, TOKENS_DEBT).allowed
    left = draw(buckets, charge(900)).levels[0]
    assert left.level == pytest.approx(-300) and left.remaining() == 0
    refused = draw(buckets, REQUESTS, TOKENS_DEBT)
    assert not refused.allowed and refused.refused_by == "tokens"
    assert refused.wait_s == pytest.approx(30.0)  # 300 tokens at ten a second
    clock.now += 30.0
    assert not draw(buckets, REQUESTS, TOKENS_DEBT).allowed  # exactly zero is not above it
    clock.now += 0.1
    assert draw(buckets, REQUESTS, TOKENS_DEBT).allowed


def test_a_draw_is_all_or_nothing_across_its_buckets(buckets):
    draw(buckets, charge(700))
    refused = draw(buckets, REQUESTS, TOKENS_DEBT)
    assert not refused.allowed
    assert refused.levels[0].level == pytest.approx(60)  # the request was not taken


def test_the_wait_is_the_longest_of_the_refusing_buckets(buckets):
    for _ in range(60):
        draw(buckets, REQUESTS)
    draw(buckets, charge(650))
    refused = draw(buckets, REQUESTS, TOKENS_DEBT)
    assert refused.wait_s == pytest.approx(5.0) and refused.refused_by == "tokens"


def test_tenants_and_limits_have_buckets_of_their_own(buckets):
    for _ in range(60):
        draw(buckets, REQUESTS)
    assert draw(buckets, Draw("team-b", "requests", 60)).allowed
    assert draw(buckets, Draw("team-a", "images", 60)).allowed


def test_a_lowered_limit_caps_a_fuller_bucket(buckets):
    draw(buckets, Draw("team-a", "requests", 600))
    assert draw(buckets, Draw("team-a", "requests", 10)).levels[0].level == pytest.approx(9)


def test_a_take_larger_than_the_bucket_holds_waits_for_the_difference(buckets):
    outcome = draw(buckets, Draw("t", "images", 60, 10, TAKE), Draw("t", "images2", 60, 70))
    assert not outcome.allowed and outcome.wait_s == pytest.approx(10.0)


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.0004, "0s"), (0.012, "12ms"), (0.999, "999ms"), (1, "1s"), (1.5, "1.5s"),
    (6.25, "6.25s"), (59.9996, "1m0s"), (60, "1m0s"), (90.5, "1m30.5s"), (360, "6m0s"),
    (3600, "1h0m0s"), (3723, "1h2m3s"), (-1, "0s")])
def test_a_reset_is_written_as_openai_writes_it(seconds, text):
    assert duration(seconds) == text


def test_the_headers_tell_limit_remaining_and_reset_per_bucket():
    headers = rate_limit_headers([BucketLevel("requests", 600, 599.4),
                                  BucketLevel("tokens", 200000, -20000)])
    assert headers == {
        "x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599",
        "x-ratelimit-reset-requests": "60ms",
        "x-ratelimit-limit-tokens": "200000", "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m6s"}


def test_retry_after_is_the_buckets_wait_in_whole_seconds_rounded_up(buckets, clock):
    for _ in range(60):
        draw(buckets, REQUESTS)
    clock.now += 0.75
    refused = draw(buckets, REQUESTS)
    headers = error_headers(RateLimited("over", retry_after_s=refused.wait_s))
    assert headers["Retry-After"] == "1"
    draw(buckets, charge(1000))
    refused = draw(buckets, TOKENS_DEBT)
    assert error_headers(RateLimited("over", retry_after_s=refused.wait_s))["Retry-After"] \
        == "40"
