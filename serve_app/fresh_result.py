"""One async check's result, shared: callers within `max_age_s` of the last check get its
result, and while a check runs every caller awaits that one, so a flood of callers costs at most
one check per `max_age_s` (what /readyz answers from: each check calls every replica group)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshResult(Generic[T]):
    def __init__(self, check: Callable[[], Awaitable[T]], max_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check = check
        self.max_age_s = max_age_s
        self.clock = clock
        self._result: T | None = None
        self._checked_at: float | None = None  # when the check that gave _result began
        self._in_flight: asyncio.Future[T] | None = None

    async def get(self) -> T:
        """The last result if it is at most `max_age_s` old (counted from when its check
        began), else that of the check in flight, started here if none is."""
        if self._checked_at is not None and self.clock() - self._checked_at <= self.max_age_s:
            return self._result
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(self._run())
        # A caller that gives up (its client left) must not cancel the check the others await.
        return await asyncio.shield(self._in_flight)

    async def _run(self) -> T:
        began = self.clock()
        try:
            result = await self.check()
        finally:
            self._in_flight = None
        self._result, self._checked_at = result, began
        return result
