"""The tenants' hourly and daily usage in a real redis-server (Debian's, as the cache's tests use
it): two ingress replicas' counts add up there, each key expires after its bucket's last
reported period, and a Redis that fails keeps each replica's counts until it is back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis

from cluster.redis_server import RedisServer
from deployments.core.errors import Unavailable
from serve_app.redis_usage import RedisUsageLedger
from serve_app.usage_ledger import MemoryUsageLedger
from tests.unit.fake_clock import FakeClock

START = datetime(2026, 12, 7, 15, 10, tzinfo=UTC).timestamp()
CHAT = {"requests": 1, "prompt_tokens": 30, "completion_tokens": 5, "model_seconds.text": 0.25}
EMBEDDING = {"requests": 1, "images": 4, "model_seconds.vision": 0.125}
# Keeps Redis busy for ARGV[1] seconds.
BUSY_SCRIPT = """
local function now() local t = redis.call('TIME') return t[1] + t[2] / 1000000 end
local until_ = now() + tonumber(ARGV[1])
while now() < until_ do end
"""


def ledger(server: RedisServer, clock: FakeClock, **settings) -> RedisUsageLedger:
    options = {"key_prefix": "test:usage", "hours_kept": 48, "days_kept": 7,
               "flush_interval_s": 0.01, "timeout_s": 0.5, **settings}
    return RedisUsageLedger(server.url, clock=clock, **options)


def run(coroutine):
    return asyncio.run(coroutine)


def test_two_replicas_add_up_to_what_one_would_have_counted(redis_server):
    clock = FakeClock(START)
    alone = MemoryUsageLedger(48, 7, clock)

    async def scenario():
        first, second = ledger(redis_server, clock), ledger(redis_server, clock)
        for replica, tenant, counts, later in [
                (first, "team-a", CHAT, 0), (second, "team-a", CHAT, 60),
                (second, "team-b", EMBEDDING, 0), (first, "team-a", CHAT, 3600),
                (first, "team-b", EMBEDDING, 9 * 3600)]:
            clock.now += later
            replica.record(tenant, counts)
            alone.record(tenant, counts)
            await replica.flush()
        from_first, from_second = await first.report(), await second.report()
        await first.close()
        await second.close()
        return from_first, from_second

    from_first, from_second = run(scenario())
    expected = run(alone.report())
    assert from_first["store"] == "redis" and expected["store"] == "replica"
    assert from_first["tenants"] == from_second["tenants"] == expected["tenants"]
    assert from_first["tenants"]["team-a"]["days"][0]["prompt_tokens"] == 90
    assert from_first["tenants"]["team-b"]["days"][1]["images"] == 4


def test_counts_are_written_soon_after_they_are_recorded(redis_server):
    clock = FakeClock(START)

    async def scenario():
        writer, reader = ledger(redis_server, clock), ledger(redis_server, clock)
        writer.record("team-a", CHAT)
        writer.record("team-a", CHAT)
        for _ in range(200):
            if not writer.pending:
                break
            await asyncio.sleep(0.01)
        seen = await reader.report()
        await writer.close()
        await reader.close()
        return seen

    hours = run(scenario())["tenants"]["team-a"]["hours"]
    assert [(row["requests"], row["completion_tokens"]) for row in hours] == [(2, 10)]


def test_each_key_expires_after_its_bucket_is_no_longer_reported(redis_server):
    clock = FakeClock(START)

    async def scenario():
        usage = ledger(redis_server, clock, hours_kept=3, days_kept=2)
        usage.record("team-a", CHAT)
        await usage.flush()
        await usage.close()

    run(scenario())
    client = redis.Redis.from_url(redis_server.url)
    hour, day = int(START // 3600 * 3600), int(START // 86400 * 86400)
    assert client.hgetall(f"test:usage:hour:team-a:{hour}")[b"prompt_tokens"] == b"30"
    assert 3 * 3600 < client.ttl(f"test:usage:hour:team-a:{hour}") <= 4 * 3600
    assert 2 * 86400 < client.ttl(f"test:usage:day:team-a:{day}") <= 3 * 86400
    assert client.smembers("test:usage:tenants") == {b"team-a"}
    client.close()


def test_counts_made_while_redis_is_down_are_written_once_it_is_back(redis_server):
    clock = FakeClock(START)

    async def scenario():
        usage = ledger(redis_server, clock, timeout_s=0.2)
        usage.record("team-a", CHAT)
        assert await usage.flush()
        redis_server.kill()
        usage.record("team-a", CHAT)
        failed = await usage.flush()
        with pytest.raises(Unavailable):
            await usage.report()
        redis_server.start()  # the same port, empty: what it had is gone with it
        usage.record("team-a", CHAT)
        back = await usage.report()
        await usage.close()
        return failed, back

    failed, back = run(scenario())
    assert failed is False
    assert back["tenants"]["team-a"]["days"][0]["requests"] == 2


def test_a_write_that_timed_out_but_ran_is_not_counted_again(redis_server):
    """Redis runs a write after the replica gave up waiting for its answer (here Redis is busy
    with a slow script past the replica's timeout, then runs the write it has received): the
    counts go back to pending, and writing them again must not add them twice."""
    clock = FakeClock(START)
    admin = redis.Redis.from_url(redis_server.url)

    async def scenario():
        usage = ledger(redis_server, clock, timeout_s=0.1, flush_interval_s=60)
        usage.record("team-a", EMBEDDING)
        assert await usage.flush()  # connected
        usage.record("team-a", CHAT)
        busy = asyncio.ensure_future(asyncio.to_thread(admin.eval, BUSY_SCRIPT, 0, 0.4))
        await asyncio.sleep(0.05)
        assert await usage.flush() is False
        await busy
        assert await usage.flush()
        seen = await usage.report()
        await usage.close()
        return seen

    day = run(scenario())["tenants"]["team-a"]["days"][0]
    admin.close()
    assert (day["requests"], day["images"], day["prompt_tokens"]) == (2, 4, 30)
