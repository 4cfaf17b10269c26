"""Token buckets for the tenants' per-minute limits: the arithmetic, and the buckets kept in
this process (serve_app/redis_buckets.py keeps them in Redis with the same arithmetic, in Lua).

A bucket holds at most a minute's worth (`per_minute`) and refills at `per_minute / 60` a
second; a missing bucket is full. One check (a draw) asks several buckets at once, all or
nothing:

- take: the bucket must hold `cost` (a request, charged at admission);
- debt: the bucket must be above zero; nothing is taken (tokens, images and audio seconds are
  known only when the answer ends, so they are charged then, and the next request waits while
  the bucket is below zero);
- charge: `cost` is taken whatever the level, which may go below zero.

A refused draw takes nothing from take and debt buckets; its wait is the time until every
refusing bucket would pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Mode = Literal["take", "debt", "charge"]
TAKE: Mode = "take"
DEBT: Mode = "debt"
CHARGE: Mode = "charge"
SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True)
class Draw:
    """What one check asks of one tenant's bucket for one limit."""

    tenant: str
    limit: str  # requests, tokens, images, audio-seconds
    per_minute: float
    cost: float = 1.0
    mode: Mode = TAKE

    @property
    def rate(self) -> float:
        """Refill, per second."""
        return self.per_minute / SECONDS_PER_MINUTE

    def passes(self, level: float) -> bool:
        if self.mode == TAKE:
            return level >= self.cost
        if self.mode == DEBT:
            return level > 0
        return True

    def wait_s(self, level: float) -> float:
        """Seconds until a bucket at `level` lets this draw pass."""
        needed = self.cost if self.mode == TAKE else 0.0
        return max(0.0, needed - level) / self.rate


@dataclass(frozen=True)
class BucketLevel:
    """A bucket after a draw, as the x-ratelimit-* headers tell it."""

    limit: str
    per_minute: float
    level: float

    def remaining(self) -> int:
        return max(0, math.floor(self.level))

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, self.per_minute - self.level) * SECONDS_PER_MINUTE / self.per_minute


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    levels: tuple[BucketLevel, ...]  # after the draw, in the draws' order
    wait_s: float = 0.0  # refused: until every refusing bucket would pass
    refused_by: str | None = None  # refused: the limit that makes it wait longest


def refilled(level: float, elapsed_s: float, draw: Draw) -> float:
    return min(draw.per_minute, level + max(0.0, elapsed_s) * draw.rate)


def after_draw(levels: Sequence[float], draws: Sequence[Draw]) -> tuple[bool, list[float]]:
    """(allowed, the levels after) from the levels refilled to now: what the Lua script does."""
    allowed = all(draw.passes(level) for draw, level in zip(draws, levels, strict=True))
    return allowed, [level - draw.cost if allowed or draw.mode == CHARGE else level
                     for draw, level in zip(draws, levels, strict=True)]


def outcome_of(allowed: bool, levels_after: Sequence[float], draws: Sequence[Draw]) -> Outcome:
    """The outcome of a draw from its decision and the levels it left."""
    levels = tuple(BucketLevel(draw.limit, draw.per_minute, level)
                   for draw, level in zip(draws, levels_after, strict=True))
    if allowed:
        return Outcome(True, levels)
    waits = [(draw.wait_s(level), draw.limit) for draw, level in zip(draws, levels_after)
             if draw.mode != CHARGE and not draw.passes(level)]
    wait_s, limit = max(waits)
    return Outcome(False, levels, wait_s, limit)


class Buckets(Protocol):
    async def draw(self, draws: Sequence[Draw]) -> Outcome: ...

    async def close(self) -> None: ...


class MemoryBuckets:
    """Buckets in this process: each ingress replica holds its own."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (level, at)

    async def draw(self, draws: Sequence[Draw]) -> Outcome:
        return self.draw_now(draws)

    def draw_now(self, draws: Sequence[Draw]) -> Outcome:
        now = self.clock()
        levels = [self._level(draw, now) for draw in draws]
        allowed, after = after_draw(levels, draws)
        for draw, level in zip(draws, after):
            self.buckets[draw.tenant, draw.limit] = (level, now)
        return outcome_of(allowed, after, draws)

    def carry_on(self, draws: Sequence[Draw], levels: Sequence[float]) -> None:
        """Sets the draws' buckets to `levels`, now (what a shared store last reported)."""
        now = self.clock()
        for draw, level in zip(draws, levels, strict=True):
            self.buckets[draw.tenant, draw.limit] = (level, now)

    async def close(self) -> None:
        self.buckets.clear()

    def _level(self, draw: Draw, now: float) -> float:
        level, at = self.buckets.get((draw.tenant, draw.limit), (draw.per_minute, now))
        return refilled(level, now - at, draw)
