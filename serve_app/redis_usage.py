"""The tenants' hourly and daily usage in the app's Redis, added up by every ingress replica.

Each bucket is a hash under PREFIX:PERIOD:TENANT:START (START in epoch seconds, UTC) whose
fields are the counts (serve_app/usage_totals.py), grown with HINCRBYFLOAT; the set
PREFIX:tenants names the tenants that have any. A replica adds its requests' counts to a local
pending total and writes it at most `flush_interval_s` later, every bucket it touched in one
MULTI/EXEC (all or nothing), each key's TTL renewed to outlive its bucket's last reported
period. While Redis fails, the pending counts wait and are written once it answers (the outage
logged once); GET /v1/usage writes its own replica's pending counts first, then reads every
kept hour and day of every tenant in one pipeline, and answers 503 while Redis fails.

A replica that stops loses at most its last `flush_interval_s` of counts. A request counts in
the hour of its replica's clock when it ended, so replicas whose clocks differ may file a
request near the hour's turn on either side of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
logger = logging.getLogger("ray.serve")


class RedisUsageLedger:
    store = IN_REDIS

    def __init__(self, url: str, key_prefix: str, hours_kept: int, days_kept: int,
                 flush_interval_s: float, timeout_s: float,
                 clock: Callable[[], float] = time.time,
                 username: str | None = None, password: str | None = None) -> None:
        import redis

        self.client = fail_fast_client(url, timeout_s, username, password)
        self.key_prefix, self.hours_kept, self.days_kept = key_prefix, hours_kept, days_kept
        self.flush_interval_s, self.clock = flush_interval_s, clock
        self.pending = UsageTotals()
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
        while self.pending:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def flush(self) -> bool:
        """Writes the pending counts; False (and they stay pending) if Redis failed."""
        self.pending.drop_before(oldest_kept(self.clock(), self.hours_kept, self.days_kept))
        batch = self.pending.take()
        if not batch:
            return True
        try:
            await self._write(batch)
        except self._errors as exc:
            self.pending.merge(batch)
            self._failed(exc)
            return False
        self._recovered()
        return True

    async def _write(self, batch: UsageTotals) -> None:
        pipe = self.client.pipeline(transaction=True)
        for bucket, counts in batch.buckets.items():
            key = self.key(bucket)
            for name, value in counts.items():
                pipe.hincrbyfloat(key, name, value)
            pipe.expire(key, self.ttl_s(bucket[0]))
        pipe.sadd(self.tenants_key, *{tenant for _, tenant, _ in batch.buckets})
        pipe.expire(self.tenants_key, self.ttl_s("day"))
        await pipe.execute()

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
