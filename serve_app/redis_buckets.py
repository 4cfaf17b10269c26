"""The tenants' token buckets in Redis, shared by every ingress replica: each draw is one Lua
script (redis-py's register_script: EVALSHA), so checking and taking from all its buckets is
one atomic round trip. The arithmetic is serve_app/token_buckets.py's, in Lua.

A bucket is a hash {level, at} under PREFIX:TENANT:LIMIT that expires once it would be full
again (a missing bucket is full). Time is Redis's own clock (TIME), so ingress replicas on
machines whose clocks differ share one; a test may pass its own. While Redis fails, each
replica's own buckets (MemoryBuckets) decide, for `retry_s` after each failure; the outage is
logged once. They carry on from the levels Redis last reported to this replica (a bucket it
never drew from starts full): a tenant whose shared bucket was empty is not let in a minute's
worth at once by every replica because one answer came late.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from serve_app.redis_connection import fail_fast_client
from serve_app.token_buckets import Draw, MemoryBuckets, Outcome, outcome_of

logger = logging.getLogger("ray.serve")

# KEYS: one bucket per draw. ARGV[1]: now in seconds ("" for Redis's TIME), then per draw:
# per_minute, cost, mode. Returns {allowed (1/0), level after, ...}, levels as strings (a Lua
# number returned to Redis is cut to an integer).
DRAW_SCRIPT = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local levels, allowed = {}, 1
for i, key in ipairs(KEYS) do
  local per_minute = tonumber(ARGV[3 * i - 1])
  local cost, mode = tonumber(ARGV[3 * i]), ARGV[3 * i + 1]
  local rate = per_minute / 60
  local state = redis.call('HMGET', key, 'level', 'at')
  local level, at = tonumber(state[1]), tonumber(state[2])
  if not level or not at then level, at = per_minute, now end
  level = math.min(per_minute, level + math.max(0, now - at) * rate)
  levels[i] = level
  if (mode == 'take' and level < cost) or (mode == 'debt' and level <= 0) then allowed = 0 end
end
local reply = {allowed}
for i, key in ipairs(KEYS) do
  local per_minute = tonumber(ARGV[3 * i - 1])
  local cost, mode = tonumber(ARGV[3 * i]), ARGV[3 * i + 1]
  local level = levels[i]
  if allowed == 1 or mode == 'charge' then level = level - cost end
  redis.call('HSET', key, 'level', tostring(level), 'at', tostring(now))
  local full_in_ms = math.ceil((per_minute - level) * 60000 / per_minute)
  redis.call('PEXPIRE', key, math.max(0, full_in_ms) + 1000)
  reply[i + 1] = tostring(level)
end
return reply
"""


class RedisBuckets:
    def __init__(self, url: str, key_prefix: str, timeout_s: float, retry_s: float,
                 clock: Callable[[], float] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 username: str | None = None, password: str | None = None) -> None:
        """`clock`: seconds to run the buckets by; None: Redis's own clock."""
        import redis

        self.client = fail_fast_client(url, timeout_s, username, password)
        self.script = self.client.register_script(DRAW_SCRIPT)
        self.key_prefix, self.retry_s, self.clock = key_prefix, retry_s, clock
        self.monotonic = monotonic
        self.local = MemoryBuckets(monotonic)
        self.down_until: float | None = None
        self._errors = (redis.RedisError, OSError, TimeoutError)

    def key(self, draw: Draw) -> str:
        return f"{self.key_prefix}:{draw.tenant}:{draw.limit}"

    async def draw(self, draws: Sequence[Draw]) -> Outcome:
        if self.down_until is not None and self.monotonic() < self.down_until:
            return self.local.draw_now(draws)
        now = "" if self.clock is None else repr(self.clock())
        args = [now] + [value for draw in draws
                        for value in (repr(float(draw.per_minute)), repr(float(draw.cost)),
                                      draw.mode)]
        try:
            reply = await self.script(keys=[self.key(draw) for draw in draws], args=args)
        except self._errors as exc:
            self._failed(exc)
            return self.local.draw_now(draws)
        self._recovered()
        levels = [float(level) for level in reply[1:]]
        self.local.carry_on(draws, levels)
        return outcome_of(int(reply[0]) == 1, levels, draws)

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except self._errors:
            pass

    def _failed(self, exc: BaseException) -> None:
        if self.down_until is None:
            logger.error("tenant limits: Redis failed (%s: %s); each ingress replica counts on "
                         "its own until it is back", type(exc).__name__, exc)
        self.down_until = self.monotonic() + self.retry_s

    def _recovered(self) -> None:
        if self.down_until is not None:
            self.down_until = None
            logger.warning("tenant limits: Redis answers again")
