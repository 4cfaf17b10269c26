"""The tenants' hourly and daily usage in the app's Redis, added up by every ingress replica.

Each bucket is a hash under PREFIX:PERIOD:TENANT:START (START in epoch seconds, UTC) whose
fields are the counts (serve_app/usage_totals.py), grown with HINCRBYFLOAT; the set
PREFIX:tenants names the tenants that have any. A replica adds its requests' counts to a local
pending total and writes it at most `flush_interval_s` later, every bucket it touched in one
Lua script (all or nothing), each key's TTL renewed to outlive its bucket's last reported
period. While Redis fails, the pending counts wait and are written once it answers (the outage
logged once); GET /v1/usage writes its own replica's pending counts first, then reads every
kept hour and day of every tenant in one pipeline, and answers 503 while Redis fails.

Each write is made once: a write whose answer did not come in time may still have run (Redis
busy, or the replica's event loop), so it is sent again as it was, under the same id, and the
script adds nothing for an id it has seen (PREFIX:write:ID, kept WRITE_ID_TTL_S). Counts
recorded meanwhile go in a write of their own.

A replica that stops loses at most its last `flush_interval_s` of counts. A request counts in
the hour of its replica's clock when it ended, so replicas whose clocks differ may file a
request near the hour's turn on either side of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping

from deployments.core.errors import Unavailable
from serve_app.redis_connection import fail_fast_client
from serve_app.usage_totals import (
    PERIODS,
    BucketKey,
    UsageTotals,
    oldest_kept,
    period_start,
    report,
)

IN_REDIS = "redis"
REDIS_RETRY_AFTER_S = 5
WRITE_ID_TTL_S = 3600  # a write retried later than this after it ran would count twice
# KEYS: the write's id, the tenants set, then the buckets. ARGV: the id's TTL, the set's TTL,
# then per bucket its TTL, its number of counts and each count's name and value, then the
# tenants. Returns 0 for a write already made.
WRITE_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local a = 3
for i = 3, #KEYS do
  local ttl, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    redis.call('HINCRBYFLOAT', KEYS[i], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
for k = a, #ARGV do redis.call('SADD', KEYS[2], ARGV[k]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""
logger = logging.getLogger("ray.serve")


class RedisUsageLedger:
    store = IN_REDIS

    def __init__(self, url: str, key_prefix: str, hours_kept: int, days_kept: int,
                 flush_interval_s: float, timeout_s: float,
                 clock: Callable[[], float] = time.time,
                 username: str | None = None, password: str | None = None) -> None:
        import redis

        self.client = fail_fast_client(url, timeout_s, username, password)
        self.script = self.client.register_script(WRITE_SCRIPT)
        self.key_prefix, self.hours_kept, self.days_kept = key_prefix, hours_kept, days_kept
        self.flush_interval_s, self.clock = flush_interval_s, clock
        self.pending = UsageTotals()
        self.unanswered: tuple[str, UsageTotals] | None = None  # a write that may have run
        self.failing = False
        self._flusher: asyncio.Task | None = None
        self._errors = (redis.RedisError, OSError, TimeoutError)

    def key(self, bucket: BucketKey) -> str:
        period, tenant, start = bucket
        return f"{self.key_prefix}:{period}:{tenant}:{start}"

    @property
    def tenants_key(self) -> str:
        return f"{self.key_prefix}:tenants"

    def ttl_s(self, period: str) -> int:
        """Long enough for a bucket written at its end to outlive its last reported period."""
        kept = {"hour": self.hours_kept, "day": self.days_kept}[period]
        return (kept + 1) * PERIODS[period]

    def record(self, tenant: str, counts: Mapping[str, float]) -> None:
        """Adds the counts to the pending total, which a task writes soon (outside an event
        loop, the next record or report does)."""
        self.pending.add(tenant, counts, self.clock())
        if self._flusher is None or self._flusher.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flusher = loop.create_task(self._flush_while_pending())

    async def _flush_while_pending(self) -> None:
        while self.pending or self.unanswered:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def flush(self) -> bool:
        """Writes the counts not yet written; False (and they wait) if Redis failed."""
        if self.unanswered is not None:  # first, as it was: it may have run already
            if not await self._write_once(*self.unanswered):
                return False
        self.pending.drop_before(oldest_kept(self.clock(), self.hours_kept, self.days_kept))
        batch = self.pending.take()
        return not batch or await self._write_once(uuid.uuid4().hex, batch)

    async def _write_once(self, write_id: str, batch: UsageTotals) -> bool:
        """Writes `batch` under `write_id`; on failure keeps it to send again, same id."""
        try:
            await self._write(write_id, batch)
        except self._errors as exc:
            self.unanswered = (write_id, batch)
            self._failed(exc)
            return False
        self.unanswered = None
        self._recovered()
        return True

    async def _write(self, write_id: str, batch: UsageTotals) -> None:
        keys = [f"{self.key_prefix}:write:{write_id}", self.tenants_key]
        args: list[str | int | float] = [WRITE_ID_TTL_S, self.ttl_s("day")]
        for bucket, counts in batch.buckets.items():
            keys.append(self.key(bucket))
            args += [self.ttl_s(bucket[0]), len(counts)]
            for name, value in counts.items():
                args += [name, repr(float(value))]
        args += sorted({tenant for _, tenant, _ in batch.buckets})
        await self.script(keys=keys, args=args)

    async def report(self) -> dict:
        await self.flush()
        now = self.clock()
        oldest = oldest_kept(now, self.hours_kept, self.days_kept)
        try:
            tenants = sorted(name.decode() for name in await self.client.smembers(
                self.tenants_key))
            buckets = [(period, tenant, start) for tenant in tenants for period in PERIODS
                       for start in range(oldest[period], period_start(period, now) + 1,
                                          PERIODS[period])]
            pipe = self.client.pipeline(transaction=False)
            for bucket in buckets:
                pipe.hgetall(self.key(bucket))
            found = await pipe.execute()
        except self._errors as exc:
            self._failed(exc)
            raise Unavailable("usage: the app's Redis, which keeps it, does not answer; retry",
                              retry_after_s=REDIS_RETRY_AFTER_S) from None
        return report(((bucket, {name.decode(): float(value) for name, value in hash_.items()})
                       for bucket, hash_ in zip(buckets, found) if hash_), self.store)

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except self._errors:
            pass

    def _failed(self, exc: BaseException) -> None:
        if not self.failing:
            logger.error("tenant usage: Redis failed (%s: %s); each ingress replica keeps its "
                         "counts until it is back", type(exc).__name__, exc)
        self.failing = True

    def _recovered(self) -> None:
        if self.failing:
            self.failing = False
            logger.warning("tenant usage: Redis answers again; the counts kept meanwhile are "
                           "written")
