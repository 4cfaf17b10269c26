"""A tenant's limits at the ingress: what its request may start, and what it is charged once
it has ended.

At admission, one draw (one round trip where the buckets are in Redis) takes a request from
the requests bucket and asks the tokens, images and audio-seconds buckets to be above zero;
refused, the request gets a 429 whose Retry-After is the bucket's wait. Tokens, images and
audio seconds are charged when the answer ends (a stream: after its last event), from what
its replica calls used (serve_app/request_tenant.py): the ingress does not tokenize, and the
audio's duration is known only once it is transcribed. So a tenant can overshoot its tokens
per minute by what its requests in flight use, and the requests after that wait until the
bucket has refilled above zero.

`max_concurrent` counts the tenant's requests in flight on this ingress replica (each replica
holds its own count: with several replicas the tenant may have that many on each).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field

from deployments.core.config import AppConfig
from deployments.core.errors import RateLimited
from serve_app.rate_limit_headers import rate_limit_headers
from serve_app.redis_connection import redis_target
from serve_app.request_tenant import Usage
from serve_app.tenants import PER_MINUTE_LIMITS, Tenant
from serve_app.token_buckets import (
    CHARGE,
    DEBT,
    TAKE,
    BucketLevel,
    Buckets,
    Draw,
    MemoryBuckets,
)

CHARGED_AFTER = ("tokens", "images", "audio-seconds")
CONCURRENCY_RETRY_AFTER_S = 1.0


@dataclass
class Admission:
    """One request's standing with its tenant's limits: the buckets as its draw left them
    (for the headers), and why it was refused, if it was."""

    tenant: Tenant | None
    levels: dict[str, BucketLevel] = field(default_factory=dict)
    refusal: RateLimited | None = None
    holds_slot: bool = False
    settled: bool = False

    def headers(self) -> dict[str, str]:
        return rate_limit_headers(self.levels.values())


class TenantLimits:
    def __init__(self, buckets: Buckets) -> None:
        self.buckets = buckets
        self.in_flight: Counter[str] = Counter()
        self._settling: set[asyncio.Task] = set()

    async def admit(self, tenant: Tenant | None) -> Admission:
        """The request's admission; `refusal` set when a limit turns it away (then it holds
        nothing and owes nothing)."""
        if tenant is None:
            return Admission(None)
        limit = tenant.max_concurrent
        if limit is not None and self.in_flight[tenant.name] >= limit:
            return Admission(tenant, refusal=RateLimited(
                f"{tenant.name} has {limit} requests in flight, its max_concurrent; retry when "
                f"one has finished", retry_after_s=CONCURRENCY_RETRY_AFTER_S))
        admission = Admission(tenant)
        if limit is not None:  # taken before the draw, which may wait on Redis
            self.in_flight[tenant.name] += 1
            admission.holds_slot = True
        draws = admission_draws(tenant)
        if draws:
            outcome = await self.buckets.draw(draws)
            admission.levels = {level.limit: level for level in outcome.levels}
            if not outcome.allowed:
                self._release(admission)
                admission.refusal = RateLimited(
                    f"{tenant.name} is over its {PER_MINUTE_LIMITS[outcome.refused_by]} "
                    f"({tenant.per_minute()[outcome.refused_by]}); retry in "
                    f"{max(1, math.ceil(outcome.wait_s))} s", retry_after_s=outcome.wait_s)
        return admission

    async def settle(self, admission: Admission, usage: Usage) -> None:
        """Frees the request's slot and charges what it used (once)."""
        if admission.settled or admission.tenant is None or admission.refusal is not None:
            return
        admission.settled = True
        self._release(admission)
        draws = charge_draws(admission.tenant, usage)
        if draws:
            outcome = await self.buckets.draw(draws)
            admission.levels.update({level.limit: level for level in outcome.levels})

    def _release(self, admission: Admission) -> None:
        if admission.holds_slot:
            admission.holds_slot = False
            name = admission.tenant.name
            self.in_flight[name] -= 1
            if self.in_flight[name] <= 0:
                del self.in_flight[name]

    def settle_later(self, admission: Admission, usage: Usage) -> None:
        """settle() for the end of a stream, which may be cancelled: the slot is freed now, the
        charge made in a task of its own (none when there is nothing to charge)."""
        self._release(admission)
        if admission.tenant is None or not charge_draws(admission.tenant, usage):
            admission.settled = True
            return
        task = asyncio.get_running_loop().create_task(self.settle(admission, usage))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)


def admission_draws(tenant: Tenant) -> list[Draw]:
    draws = []
    for name, per_minute in tenant.per_minute().items():
        mode = DEBT if name in CHARGED_AFTER else TAKE
        draws.append(Draw(tenant.name, name, per_minute, 1.0 if mode == TAKE else 0.0, mode))
    return draws


def charge_draws(tenant: Tenant, usage: Usage) -> list[Draw]:
    limits, used = tenant.per_minute(), usage.by_limit()
    return [Draw(tenant.name, name, limits[name], used[name], CHARGE)
            for name in CHARGED_AFTER if name in limits and used[name] > 0]


def make_buckets(config: AppConfig) -> Buckets:
    """In the app's Redis (cache.redis_url) when it is set; else in this process."""
    target = redis_target(config.cache)
    if target is None:
        return MemoryBuckets()
    from serve_app.redis_buckets import RedisBuckets

    settings = config.ingress.tenants
    return RedisBuckets(target.url, settings.key_prefix, settings.redis_timeout_s,
                        settings.redis_retry_s, username=target.username,
                        password=target.password)
