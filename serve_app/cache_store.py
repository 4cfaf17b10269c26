"""Where the response cache (serve_app/cache.py) keeps its entries: bytes under string keys,
each with a lifetime. Two stores with one async interface:

- MemoryStore: in this process, least recently used first out, bounded by bytes;
- RedisStore: one Redis server shared by every ingress replica (the `redis` client's asyncio
  API), with short socket timeouts. A failed call raises StoreDown at once, and for
  `retry_s` after it every call does too without touching the network, so an outage costs
  requests no timeouts; the cache turns StoreDown into computing the answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from serve_app.redis_connection import fail_fast_client

ENTRY_OVERHEAD_BYTES = 64  # what one entry holds beside its key and value, roughly


class StoreDown(Exception):
    """The store could not answer (connection refused, timeout, a server error)."""


class Store(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, entries: Sequence[tuple[str, bytes]], ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """An LRU of at most `max_bytes` (keys, values and a fixed overhead per entry), whose
    entries also expire `ttl_s` after they were stored."""

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes, self.clock = max_bytes, clock
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(key) for key in keys]

    async def set_many(self, entries: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        for key, value in entries:
            self.set(key, value, ttl_s)

    async def close(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def get(self, key: str) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if self.clock() >= expires_at:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        size = _size(key, value)
        if key in self.entries:
            self._drop(key)
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes:
            oldest = next(iter(self.entries))
            self._drop(oldest)
            self.evictions += 1
        self.entries[key] = (self.clock() + ttl_s, value)
        self.bytes += size

    def _drop(self, key: str) -> None:
        _, value = self.entries.pop(key)
        self.bytes -= _size(key, value)


def _size(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


class RedisStore:
    """GET/SET on a Redis server: MGET for many keys, one pipelined round trip of SET ... PX."""

    def __init__(self, url: str, timeout_s: float, retry_s: float,
                 clock: Callable[[], float] = time.monotonic, username: str | None = None,
                 password: str | None = None) -> None:
        import redis

        self.client = fail_fast_client(url, timeout_s, username, password)
        self.retry_s, self.clock = retry_s, clock
        self.down_until = 0.0
        self._errors = (redis.RedisError, OSError, TimeoutError)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._call(self.client.mget, list(keys))

    async def set_many(self, entries: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        if not entries:
            return
        async def write() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in entries:
                    pipe.set(key, value, px=max(1, int(ttl_s * 1000)))
                await pipe.execute()
        await self._call(write)

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except self._errors:
            pass

    async def _call(self, method, *args):
        if self.clock() < self.down_until:
            raise StoreDown("redis was unreachable moments ago")
        try:
            return await method(*args)
        except self._errors as exc:
            self.down_until = self.clock() + self.retry_s
            raise StoreDown(f"{type(exc).__name__}: {exc}") from exc
