"""The tenants' token buckets in a real redis-server (Debian's, as the cache's tests use it):
the Lua script does the in-process arithmetic, atomically, for every ingress replica at once;
a Redis that fails leaves each replica its own buckets."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis

from cluster.redis_server import RedisServer
from serve_app.redis_buckets import RedisBuckets
from serve_app.token_buckets import CHARGE, DEBT, TAKE, Draw, MemoryBuckets
from tests.unit.fake_clock import FakeClock


def buckets(server: RedisServer, clock=None, **settings) -> RedisBuckets:
    options = {"key_prefix": "test:limits", "timeout_s": 0.5, "retry_s": 5.0, **settings}
    return RedisBuckets(server.url, clock=clock, **options)


def run(coroutine):
    return asyncio.run(coroutine)


REQUESTS = Draw("team-a", "requests", 6)
TOKENS = Draw("team-a", "tokens", 600, 0, DEBT)


def charged(tokens: float) -> Draw:
    return Draw("team-a", "tokens", 600, tokens, CHARGE)


# (seconds later, the draws): requests emptied, refilled, tokens overdrawn, waited out.
SCRIPT = [(0, (REQUESTS, TOKENS))] * 7 + [
    (5, (REQUESTS, TOKENS)), (5, (REQUESTS, TOKENS)), (0, (REQUESTS,)), (0, (charged(650),)),
    (0, (REQUESTS, TOKENS)), (3, (REQUESTS, TOKENS)), (8, (REQUESTS, TOKENS)),
    (0, (Draw("team-b", "images", 60, 61, TAKE),)), (120, (REQUESTS, TOKENS)),
]
EXPECTED = [True] * 6 + [False, False, True, False, True, False, False, True, False, True]


def test_the_script_does_what_the_in_process_buckets_do(redis_server):
    clock = FakeClock(1_700_000_000.0)
    local = MemoryBuckets(clock)

    async def scenario():
        shared = buckets(redis_server, clock)
        pairs = []
        for later, draws in SCRIPT:
            clock.now += later
            pairs.append((await shared.draw(draws), local.draw_now(draws)))
        await shared.close()
        return pairs

    pairs = run(scenario())
    for in_redis, in_process in pairs:
        assert in_redis.allowed == in_process.allowed
        assert in_redis.refused_by == in_process.refused_by
        assert in_redis.wait_s == pytest.approx(in_process.wait_s, abs=1e-6)
        assert [b.level for b in in_redis.levels] == pytest.approx(
            [b.level for b in in_process.levels], abs=1e-6)
    assert [p[0].allowed for p in pairs] == EXPECTED


def test_two_ingress_replicas_share_one_bucket_atomically(redis_server):
    clock = FakeClock(1_700_000_000.0)
    limit = Draw("team-a", "requests", 20)

    async def scenario():
        replicas = [buckets(redis_server, clock), buckets(redis_server, clock)]
        outcomes = await asyncio.gather(*(replicas[i % 2].draw([limit]) for i in range(50)))
        for replica in replicas:
            await replica.close()
        return outcomes

    outcomes = run(scenario())
    assert sum(outcome.allowed for outcome in outcomes) == 20
    assert sorted(round(o.levels[0].level) for o in outcomes if o.allowed) == list(range(20))


def test_redis_runs_the_buckets_by_its_own_clock(redis_server):
    limit = Draw("team-a", "requests", 1)

    async def scenario():
        shared = buckets(redis_server)
        outcomes = [await shared.draw([limit]) for _ in range(2)]
        await shared.close()
        return outcomes

    first, second = run(scenario())
    assert first.allowed and not second.allowed
    assert 0 < second.wait_s <= 60


def test_a_bucket_expires_once_it_would_be_full_again(redis_server):
    clock = FakeClock(1_700_000_000.0)

    async def scenario():
        shared = buckets(redis_server, clock)
        await shared.draw([Draw("team-a", "requests", 60, 30)])
        await shared.close()

    run(scenario())
    client = redis.Redis.from_url(redis_server.url)
    assert client.hget("test:limits:team-a:requests", "level") == b"30"
    ttl_ms = client.pttl("test:limits:team-a:requests")
    client.close()
    assert 30_000 < ttl_ms <= 31_000  # 30 requests at one a second, and a second more


def test_while_redis_is_down_each_replica_counts_on_its_own_and_says_so_once(redis_server,
                                                                             caplog):
    caplog.set_level(logging.WARNING, logger="ray.serve")
    clock, monotonic = FakeClock(1_700_000_000.0), FakeClock(0.0)
    limit = Draw("team-a", "requests", 3)

    async def scenario():
        shared = buckets(redis_server, clock, timeout_s=0.2, retry_s=1.0, monotonic=monotonic)
        assert (await shared.draw([limit])).allowed
        redis_server.kill()
        during = [(await shared.draw([limit])).allowed for _ in range(4)]
        monotonic.now += 1.5  # past retry_s: Redis is tried again, and still fails
        during.append((await shared.draw([limit])).allowed)
        redis_server.start()
        monotonic.now += 1.5
        after = await shared.draw([limit])
        await shared.close()
        return during, after

    during, after = run(scenario())
    # the replica's own bucket, from the 2 Redis last reported
    assert during == [True, True, False, False, False]
    # the restarted Redis (no persistence) has a full bucket again
    assert after.allowed and after.levels[0].level == pytest.approx(2)
    failures = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR
    assert "Redis answers again" in caplog.text


def test_an_answer_too_late_leaves_an_empty_bucket_empty(redis_server, caplog):
    """Redis busy past the replica's timeout (a slow script here; a loaded machine in
    practice): the replica's own bucket decides, from the level Redis last reported."""
    from tests.unit.test_redis_usage import BUSY_SCRIPT

    limit = Draw("team-a", "requests", 3)
    admin = redis.Redis.from_url(redis_server.url)

    async def scenario():
        shared = buckets(redis_server, timeout_s=0.1)
        emptied = [(await shared.draw([limit])).allowed for _ in range(4)]
        busy = asyncio.ensure_future(asyncio.to_thread(admin.eval, BUSY_SCRIPT, 0, 0.4))
        await asyncio.sleep(0.05)
        late = await shared.draw([limit])
        await busy
        await shared.close()
        return emptied, late

    emptied, late = run(scenario())
    admin.close()
    assert emptied == [True, True, True, False]
    assert "Redis failed" in caplog.text  # the replica's own bucket decided
    assert not late.allowed
