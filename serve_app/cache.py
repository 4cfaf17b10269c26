"""The response cache at the ingress: an answer computed once is served again, exactly, to any
request that would make the replica compute the same thing (`cache:` in the app config).

What is cached is what a replica returns, before the route formats it: an embedding vector per
input, a transcription's result (text, language, segments), a chat completion's result. So the
key holds exactly what the replica call gets, and the route's formatting parameters
(`encoding_format`, `dimensions`, `response_format`) apply after the cache, to hits and misses
alike. A key is

    {key_prefix}:{model}:sha256(route, model, version, the replica call's arguments)

where bytes (images, audio) enter as their sha256, and `version` is a fingerprint of the engine
config that serves the model (every field, so any engine change starts fresh keys) and of
`cache.version` (bumped by hand when the weights behind an unchanged config change). An answer
never crosses models, versions or arguments.

A request's `Cache-Control: no-cache` computes (and stores); `no-store` computes and stores
nothing. The response says what happened in `X-Cache`: `hit`, `miss`, `partial` (embeddings:
some inputs were cached), or `bypass` (the client asked, or the request is not cacheable, such
as a chat at a temperature above 0). Lookups are counted by route and result; a store that
fails (Redis down) is counted, logged once per outage, and the request computes its answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from deployments.core.config import AppConfig, CacheSettings, ConfigError, FromEnv
from serve_app import protocol
from serve_app.cache_store import MemoryStore, RedisStore, Store, StoreDown

HEADER = "X-Cache"
HIT, MISS, PARTIAL, BYPASS = "hit", "miss", "partial", "bypass"
EMBEDDINGS, TRANSCRIPTIONS, CHAT = "embeddings", "transcriptions", "chat"
# (route, what) -> count; what: hit, miss, bypass (per input for embeddings), store, error
OnCount = Callable[[str, str, int], None]
logger = logging.getLogger("ray.serve")


def model_versions(config: AppConfig) -> dict[str, str]:
    """Each served model name -> the fingerprint of the engine config that answers for it."""
    salt = config.cache.version
    text, vision, audio = (_fingerprint(group.engine.model_dump(), salt)
                           for group in (config.text, config.vision, config.audio))
    clip = config.vision.engine.served_model_name
    return {config.text.engine.served_model_name: text, clip: vision,
            clip + protocol.IMAGE_MODEL_SUFFIX: vision,
            config.audio.engine.served_model_name: audio}


def _fingerprint(engine: dict[str, Any], salt: str) -> str:
    return hashlib.sha256(_canonical([engine, salt])).hexdigest()[:16]


def cache_key(prefix: str, route: str, model: str, version: str, args: Any) -> str:
    digest = hashlib.sha256(_canonical([route, model, version, args])).hexdigest()
    return f"{prefix}:{model}:{digest}"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, default=_plain, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"sha256": hashlib.sha256(value).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: dataclasses.asdict(value)}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"no cache key for a {type(value).__name__}")


def redis_url(setting: str | FromEnv | None, field: str = "cache.redis_url") -> str | None:
    """The URL itself, read from its environment variable when the config names one."""
    if not isinstance(setting, FromEnv):
        return setting
    url = os.environ.get(setting.env)
    if not url:
        raise ConfigError(f"{field}: the environment variable {setting.env} is not set "
                          "on the ingress's node")
    return url


def make_store(settings: CacheSettings) -> Store:
    url = redis_url(settings.redis_url)
    if url is None:
        return MemoryStore(settings.max_bytes)
    return RedisStore(url, settings.redis_timeout_s, settings.redis_retry_s)


class ResponseCache:
    def __init__(self, settings: CacheSettings, versions: dict[str, str],
                 store: Store | None = None, on_count: OnCount | None = None) -> None:
        self.settings, self.versions = settings, versions
        self.store = store if store is not None or not settings.enabled else make_store(settings)
        self.on_count = on_count
        self.counts: Counter[tuple[str, str]] = Counter()
        self.store_down = False  # logged once per outage

    @classmethod
    def from_config(cls, config: AppConfig, on_count: OnCount | None = None) -> ResponseCache:
        return cls(config.cache, model_versions(config), on_count=on_count)

    def serves(self, route: str) -> bool:
        return self.settings.enabled and getattr(self.settings, route)

    async def one(self, request: Request, route: str, model: str, args: Any,
                  compute: Callable[[], Awaitable[Any]], cacheable: bool = True) -> Any:
        """The replica's answer for `args`: cached, or computed (and stored). The answer must
        be JSON (a dict of a replica's result)."""
        if not self.serves(route):
            return await compute()
        try:
            key = cache_key(self.settings.key_prefix, route, model, self.versions[model], args)
        except TypeError:  # an argument with no exact key (a form field sent as a file)
            cacheable = False
        read, write = _directives(request) if cacheable else (False, False)
        if read:
            found = (await self._get(route, [key]))[0]
            if found is not None:
                return self._done(request, route, HIT, json.loads(found), hits=1)
        value = await compute()
        if write:
            await self._set(route, [(key, _json_bytes(value))])
        return self._done(request, route, MISS if read else BYPASS, value, computed=1)

    async def each(self, request: Request, route: str, model: str, items: Sequence[Any],
                   compute: Callable[[list[Any]], Awaitable[Sequence[np.ndarray]]]
                   ) -> list[np.ndarray]:
        """One vector per item, in order: those cached come from the cache, the others (each
        distinct one once) from one call of `compute` with just them."""
        if not self.serves(route):
            return list(await compute(list(items)))
        read, write = _directives(request)
        version = self.versions[model]
        keys = [cache_key(self.settings.key_prefix, route, model, version, item)
                for item in items]
        vectors: list[np.ndarray | None] = [None] * len(items)
        if read:
            for i, found in enumerate(await self._get(route, keys)):
                if found is not None:
                    vectors[i] = _vector(found)
        firsts: dict[str, int] = {}  # each missing key -> its first item
        for i, key in enumerate(keys):
            if vectors[i] is None:
                firsts.setdefault(key, i)
        hits = sum(vector is not None for vector in vectors)
        if firsts:
            answers = await compute([items[i] for i in firsts.values()])
            computed = dict(zip(firsts, answers, strict=True))
            vectors = [computed[keys[i]] if v is None else v for i, v in enumerate(vectors)]
            if write:
                await self._set(route, [(key, _vector_bytes(v)) for key, v in computed.items()])
        state = BYPASS if not read else HIT if not firsts else MISS if not hits else PARTIAL
        return self._done(request, route, state, vectors, hits=hits,
                          computed=len(items) - hits)

    def count(self, route: str, what: str, n: int = 1) -> None:
        if n > 0:
            self.counts[route, what] += n
            if self.on_count is not None:
                self.on_count(route, what, n)

    def _done(self, request: Request, route: str, state: str, value: Any, hits: int = 0,
              computed: int = 0) -> Any:
        request.state.cache = state
        self.count(route, HIT, hits)
        self.count(route, BYPASS if state == BYPASS else MISS, computed)
        return value

    async def _get(self, route: str, keys: list[str]) -> list[bytes | None]:
        try:
            found = await self.store.get_many(keys)
        except StoreDown as exc:
            self._failed(route, exc)
            return [None] * len(keys)
        self._recovered()
        return found

    async def _set(self, route: str, entries: list[tuple[str, bytes | None]]) -> None:
        entries = [(k, v) for k, v in entries
                   if v is not None and len(v) <= self.settings.max_item_bytes]
        if not entries:
            return
        try:
            await self.store.set_many(entries, self.settings.ttl_s)
        except StoreDown as exc:
            self._failed(route, exc)
            return
        self._recovered()
        self.count(route, "store", len(entries))

    def _failed(self, route: str, exc: StoreDown) -> None:
        self.count(route, "error")
        if not self.store_down:
            self.store_down = True
            logger.warning("response cache: the store failed (%s); computing answers until it "
                           "is back", exc)

    def _recovered(self) -> None:
        if self.store_down:
            self.store_down = False
            logger.warning("response cache: the store answers again")


def mark(request: Request, response: Response) -> None:
    """Sets X-Cache on the response when the cache took part in the request."""
    state = getattr(request.state, "cache", None)
    if state is not None:
        response.headers[HEADER] = state


def _directives(request: Request) -> tuple[bool, bool]:
    """(read, write) from the request's Cache-Control: no-cache recomputes, no-store also
    keeps the answer out of the cache."""
    directives = {part.strip().split("=")[0].lower()
                  for part in request.headers.get("cache-control", "").split(",")}
    no_store = "no-store" in directives
    return not (no_store or "no-cache" in directives), not no_store


def _json_bytes(value: Any) -> bytes | None:
    """The answer as JSON, or None (not stored) for one that JSON cannot hold exactly."""
    try:
        return json.dumps(value, allow_nan=False).encode()
    except (TypeError, ValueError):
        logger.warning("response cache: an answer of type %s is not JSON; not stored",
                       type(value).__name__)
        return None


def _vector_bytes(vector: np.ndarray) -> bytes:
    array = np.ascontiguousarray(vector)
    return array.dtype.str.encode() + b"\n" + array.tobytes()


def _vector(data: bytes) -> np.ndarray:
    dtype, _, raw = data.partition(b"\n")
    return np.frombuffer(raw, dtype=np.dtype(dtype.decode())).copy()
