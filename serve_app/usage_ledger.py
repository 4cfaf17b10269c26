"""Where an ingress replica keeps the tenants' hourly and daily usage when there is no Redis: in
its own memory. With one ingress replica that is the whole truth; with several, each counts
(and GET /v1/usage answers) only the requests it served, and a replica that restarts starts
from nothing. serve_app/redis_usage.py keeps them in the app's Redis instead, added up by every
replica.

Hours older than `hours_kept` and days older than `days_kept` are forgotten (looked at once an
hour). The clock is injectable: a request counts in the hour and day in which it ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Protocol

from serve_app.usage_totals import UsageTotals, oldest_kept, period_start, report

IN_PROCESS = "replica"


class UsageLedger(Protocol):
    store: str

    def record(self, tenant: str, counts: Mapping[str, float]) -> None:
        """Adds one request's counts to its tenant's current hour and day."""

    async def report(self) -> dict:
        """The usage report of every tenant (serve_app/usage_totals.py)."""


class MemoryUsageLedger:
    store = IN_PROCESS

    def __init__(self, hours_kept: int, days_kept: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.hours_kept, self.days_kept, self.clock = hours_kept, days_kept, clock
        self.totals = UsageTotals()
        self.pruned_hour: int | None = None

    def record(self, tenant: str, counts: Mapping[str, float]) -> None:
        now = self.clock()
        self._forget_old(now)
        self.totals.add(tenant, counts, now)

    async def report(self) -> dict:
        self._forget_old(self.clock())
        return report(self.totals.buckets.items(), self.store)

    def _forget_old(self, now: float) -> None:
        hour = period_start("hour", now)
        if hour != self.pruned_hour:
            self.pruned_hour = hour
            self.totals.drop_before(oldest_kept(now, self.hours_kept, self.days_kept))
