"""The response cache at the ingress: an answer computed once is served again, exactly, to any
request that would make the replica compute the same thing (`cache:` in the app config).

What is cached is what a replica returns, before the route formats it: an embedding vector per
input, a transcription's result (text, language, segments), a chat completion's result. So the
key holds exactly what the replica call gets, and the route's formatting parameters
(`encoding_format`, `dimensions`, `response_format`) apply after the cache, to hits and misses
alike. A key is

    {key_prefix}:{namespace}:{model}:sha256(namespace, route, model, version, the call's arguments)

where bytes (images, audio) enter as their sha256, and `version` is a fingerprint of what serves
the model (group_version): the engine config of its group (every field, so any engine change
starts fresh keys), the group's `version` (bumped when the weights behind an unchanged config
change), its canary's engine and version while it has one, and `cache.version`. So after a
rollout no answer of the version before it comes from the cache. An answer
never crosses models, versions or arguments, nor tenants: the namespace is the tenant's own
(`tenant.NAME`) unless its entry in the tenants file says `cache_namespace: shared` (then
`shared`, common to every tenant that says so); the anonymous API has one, `anonymous`. So a
tenant with its own namespace is never answered from, and cannot learn of, what another sent.
The request's tenant is `request.state.tenant`, set by the front end when it authenticates.

Every entry is signed with the cache's secret and checked on read (serve_app/cache_signing.py):
one that fails the check is a miss, counted, and logged at most once a minute.

A request's `Cache-Control: no-cache` computes (and stores); `no-store` computes and stores
nothing. What happened is left in `request.state.cache` (`state_of`): `hit`, `miss`, `partial`
(embeddings: some inputs were cached), or `bypass` (the client asked, or the request is not
cacheable, such as a chat at a temperature above 0); the front end shows it as `X-Cache` to
tenants allowed the diagnostics headers (serve_app/diagnostics.py). Lookups are counted by
route and result; a store that fails (Redis down) is counted, logged once per outage, and the
request computes its answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from starlette.requests import Request

from deployments.core.config import AppConfig, CacheSettings, DeploymentSettings
from serve_app import protocol
from serve_app.cache_signing import EntrySigner, entry_signer
from serve_app.cache_store import MemoryStore, RedisStore, Store, StoreDown
from serve_app.redis_connection import redis_target
from serve_app.tenants import Tenant

HEADER = "X-Cache"
HIT, MISS, PARTIAL, BYPASS = "hit", "miss", "partial", "bypass"
EMBEDDINGS, TRANSCRIPTIONS, TRANSLATIONS = "embeddings", "transcriptions", "translations"
CHAT, COMPLETIONS = "chat", "completions"
SHARED_NAMESPACE, ANONYMOUS_NAMESPACE = "shared", "anonymous"
# (route, what) -> count; what: hit, miss, bypass (per input for embeddings), store, error,
# invalid (an entry that failed its signature check)
OnCount = Callable[[str, str, int], None]
INVALID_LOG_INTERVAL_S = 60.0
logger = logging.getLogger("ray.serve")


def model_versions(config: AppConfig) -> dict[str, str]:
    """Each served model name -> the fingerprint of what answers for it: its group's engine
    config and `version`, and its canary's while there is one."""
    salt = config.cache.version
    text, vision, audio = (_fingerprint(group_version(group), salt)
                           for group in (config.text, config.vision, config.audio))
    clip = config.vision.engine.served_model_name
    return {config.text.engine.served_model_name: text, clip: vision,
            clip + protocol.IMAGE_MODEL_SUFFIX: vision,
            config.audio.engine.served_model_name: audio}


def group_version(group: DeploymentSettings) -> list[Any]:
    """What identifies the answers of a group: each of its deployments' engine config (model,
    its arguments) and `version`. Replica counts, batching and the canary's weight change no
    answer and are left out; adding, changing or promoting a canary changes the version, so
    no answer computed before a rollout is served after it."""
    versions = [[group.engine.model_dump(), group.version]]  # type: ignore[attr-defined]
    canary = group.canary_settings()
    if canary is not None:
        versions.append([canary.engine.model_dump(), canary.version])  # type: ignore[attr-defined]
    return versions


def _fingerprint(version: list[Any], salt: str) -> str:
    return hashlib.sha256(_canonical([version, salt])).hexdigest()[:16]


def namespace(tenant: Tenant | None) -> str:
    """The part of the cache a request of `tenant` reads and writes (None: the anonymous API):
    `tenant.NAME` for one that keeps its own, one per name; the two others start otherwise."""
    if tenant is None:
        return ANONYMOUS_NAMESPACE
    if tenant.cache_namespace == "shared":
        return SHARED_NAMESPACE
    return f"tenant.{tenant.name}"


def cache_key(prefix: str, space: str, route: str, model: str, version: str, args: Any) -> str:
    digest = hashlib.sha256(_canonical([space, route, model, version, args])).hexdigest()
    return f"{prefix}:{space}:{model}:{digest}"


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


def make_store(settings: CacheSettings) -> Store:
    target = redis_target(settings)
    if target is None:
        return MemoryStore(settings.max_bytes)
    return RedisStore(target.url, settings.redis_timeout_s, settings.redis_retry_s,
                      username=target.username, password=target.password)


class ResponseCache:
    def __init__(self, settings: CacheSettings, versions: dict[str, str],
                 store: Store | None = None, on_count: OnCount | None = None,
                 signer: EntrySigner | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Builds the store and the signer when the cache is on; a cache in Redis without a
        secret is a ConfigError."""
        self.settings, self.versions = settings, versions
        self.signer = signer if signer is not None or not settings.enabled else \
            entry_signer(settings, in_redis=settings.redis_url is not None)
        self.store = store if store is not None or not settings.enabled else make_store(settings)
        self.on_count, self.clock = on_count, clock
        self.counts: Counter[tuple[str, str]] = Counter()
        self.store_down = False  # logged once per outage
        self.invalid_logged_at: float | None = None
        self.invalid_unlogged = 0

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
            key = cache_key(self.settings.key_prefix, _namespace(request), route, model,
                            self.versions[model], args)
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
        version, space = self.versions[model], _namespace(request)
        keys = [cache_key(self.settings.key_prefix, space, route, model, version, item)
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
        """The value under each key, or None: absent, the store down, or not signed right."""
        try:
            found = await self.store.get_many(keys)
        except StoreDown as exc:
            self._failed(route, exc)
            return [None] * len(keys)
        self._recovered()
        values = [None if entry is None else self.signer.verify(key, entry)
                  for key, entry in zip(keys, found, strict=True)]
        invalid = sum(entry is not None and value is None
                      for entry, value in zip(found, values, strict=True))
        if invalid:
            self._invalid(route, invalid)
        return values

    async def _set(self, route: str, entries: list[tuple[str, bytes | None]]) -> None:
        entries = [(k, v) for k, v in entries
                   if v is not None and len(v) <= self.settings.max_item_bytes]
        if not entries:
            return
        signed = [(key, self.signer.sign(key, value)) for key, value in entries]
        try:
            await self.store.set_many(signed, self.settings.ttl_s)
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

    def _invalid(self, route: str, n: int) -> None:
        """Counts entries that failed their signature check; logs them at most once per
        INVALID_LOG_INTERVAL_S (with how many came since the last log), so that a store full
        of planted entries does not flood the log."""
        self.count(route, "invalid", n)
        self.invalid_unlogged += n
        now = self.clock()
        if self.invalid_logged_at is not None and \
                now - self.invalid_logged_at < INVALID_LOG_INTERVAL_S:
            return
        count = self.invalid_unlogged
        logger.error("response cache: %s failed the signature check (each a miss): "
                     "written by someone without cache.hmac_secret (into Redis), altered or "
                     "cut short there, or signed with another secret (do all ingress replicas "
                     "have the same one?)", "1 entry" if count == 1 else f"{count} entries")
        self.invalid_logged_at, self.invalid_unlogged = now, 0


def state_of(request: Request) -> str | None:
    """What the cache did for the request (hit, miss, partial, bypass); None: it took no
    part."""
    return getattr(request.state, "cache", None)


def _namespace(request: Request) -> str:
    """The namespace of the request's tenant, which the front end set when it authenticated
    the request (an AttributeError if it did not: a request never reaches the cache unsure
    whose it is)."""
    return namespace(request.state.tenant)


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
