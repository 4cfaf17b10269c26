"""The response cache's entries are signed and checked on read (serve_app/cache_signing.py): a
tampered, truncated, moved or foreign-secret entry is a miss, counted and logged at most once a
minute; in the in-process store and in a real redis-server (Debian's, as `make system-deps`
installs it) where the entries are planted and altered with a plain Redis client, as anyone who
can write to that Redis could."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
import redis
from starlette.requests import Request

from deployments.core.config import AppConfig, CacheSettings, ConfigError
from serve_app.cache import (
    EMBEDDINGS,
    HIT,
    MISS,
    ResponseCache,
    cache_key,
    model_versions,
    namespace,
)
from serve_app.cache_signing import TAG_BYTES, EntrySigner, entry_signer
from serve_app.cache_store import MemoryStore
from tests.unit.fake_embedder import Embedder

MODEL = "clip-vit-b-32"
SECRET = "0123456789abcdef" * 4
OTHER_SECRET = "fedcba9876543210" * 4


def request() -> Request:
    asked = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    asked.state.tenant = None
    return asked


# -- the signer ----------------------------------------------------------------------------------

def test_an_entry_verifies_under_its_key_with_its_secret_only():
    signer = EntrySigner(SECRET.encode())
    entry = signer.sign("k1", b"the answer")
    assert signer.verify("k1", entry) == b"the answer"
    assert signer.verify("k1", signer.sign("k1", b"")) == b""
    tampered = entry[:-1] + bytes([entry[-1] ^ 1])
    assert signer.verify("k1", tampered) is None
    assert signer.verify("k1", entry[:-1]) is None  # value cut short
    assert signer.verify("k1", entry[:TAG_BYTES - 1]) is None  # shorter than a tag
    assert signer.verify("k1", b"") is None
    assert signer.verify("k2", entry) is None  # moved under another key
    assert EntrySigner(OTHER_SECRET.encode()).verify("k1", entry) is None
    unsigned = b"the answer"
    assert signer.verify("k1", unsigned) is None


def test_key_and_value_cannot_trade_bytes():
    signer = EntrySigner(SECRET.encode())
    entry = signer.sign("ab", b"c")
    assert signer.verify("a", entry[:TAG_BYTES] + b"bc") is None


def test_a_cache_in_redis_needs_a_long_enough_secret(tmp_path, monkeypatch):
    url = "redis://127.0.0.1:6390/0"
    with pytest.raises(ConfigError, match=r"^cache.hmac_secret: a response cache in Redis "
                                          r"needs a secret"):
        ResponseCache(CacheSettings(enabled=True, redis_url=url), {})
    monkeypatch.setenv("TEST_CACHE_SECRET", "short")
    with pytest.raises(ConfigError, match="has 5 characters; give at least 32"):
        entry_signer(CacheSettings(hmac_secret={"env": "TEST_CACHE_SECRET"}), in_redis=True)
    monkeypatch.setenv("TEST_CACHE_SECRET", "")
    with pytest.raises(ConfigError, match="cache.hmac_secret: the environment variable"):
        entry_signer(CacheSettings(hmac_secret={"env": "TEST_CACHE_SECRET"}), in_redis=True)
    with pytest.raises(ConfigError, match="cache.hmac_secret: cannot read"):
        entry_signer(CacheSettings(hmac_secret={"file": str(tmp_path / "absent")}), True)
    off = ResponseCache(CacheSettings(enabled=False, redis_url=url), {})
    assert off.signer is None and off.store is None  # only buckets use Redis then


def test_the_secret_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_CACHE_SECRET", SECRET)
    from_env = entry_signer(CacheSettings(hmac_secret={"env": "TEST_CACHE_SECRET"}), True)
    secret_file = tmp_path / "cache-secret"
    secret_file.write_text(SECRET + "\n")
    from_file = entry_signer(CacheSettings(hmac_secret={"file": str(secret_file)}), True)
    reference = EntrySigner(SECRET.encode())
    entry = reference.sign("k", b"v")
    assert from_env.verify("k", entry) == b"v" and from_file.verify("k", entry) == b"v"


def test_in_process_without_a_secret_each_start_makes_a_random_one():
    first, second = (entry_signer(CacheSettings(), in_redis=False) for _ in range(2))
    assert second.verify("k", first.sign("k", b"v")) is None
    assert first.verify("k", first.sign("k", b"v")) == b"v"


# -- through the cache ---------------------------------------------------------------------------

def memory_cache(clock) -> tuple[ResponseCache, MemoryStore]:
    config = AppConfig(cache=CacheSettings(enabled=True))
    store = MemoryStore(max_bytes=1 << 20)
    cache = ResponseCache(config.cache, model_versions(config), store=store,
                          signer=EntrySigner(SECRET.encode()), clock=clock)
    return cache, store


def embed(cache: ResponseCache, embedder: Embedder, inputs: list[str]) -> str:
    asked = request()
    asyncio.run(cache.each(asked, EMBEDDINGS, MODEL, inputs, embedder))
    return asked.state.cache


def test_a_planted_entry_is_a_miss_counted_and_logged_at_most_once_a_minute(caplog):
    caplog.set_level(logging.ERROR, logger="ray.serve")
    now = [100.0]
    cache, store = memory_cache(lambda: now[0])
    embedder = Embedder()
    assert embed(cache, embedder, ["a cat"]) == MISS
    (key,) = store.entries
    planted = np.full(4, 9.0, np.float32)
    store.set(key, b"<f4\n" + planted.tobytes(), ttl_s=60)  # no tag: what a writer could plant
    for _ in range(3):
        assert embed(cache, embedder, ["a cat"]) == MISS
        store.set(key, b"<f4\n" + planted.tobytes(), ttl_s=60)
        now[0] += 10
    assert len(embedder.calls) == 4 and cache.counts[EMBEDDINGS, "invalid"] == 3
    logged = [r.getMessage() for r in caplog.records if "signature check" in r.getMessage()]
    assert logged == [logged[0]] and logged[0].startswith("response cache: 1 entry failed")
    now[0] += 60
    assert embed(cache, embedder, ["a cat"]) == MISS
    logged = [r.getMessage() for r in caplog.records if "signature check" in r.getMessage()]
    assert len(logged) == 2 and logged[1].startswith("response cache: 3 entries failed")
    assert embed(cache, embedder, ["a cat"]) == HIT  # the recomputed answer replaced it


def test_an_entry_moved_to_another_tenants_key_is_refused():
    cache, store = memory_cache(lambda: 0.0)
    embedder = Embedder()
    embed(cache, embedder, ["a cat"])
    embed(cache, embedder, ["a dog"])
    cat_key, dog_key = store.entries
    store.set(dog_key, store.get(cat_key), ttl_s=60)
    assert embed(cache, embedder, ["a dog"]) == MISS
    assert cache.counts[EMBEDDINGS, "invalid"] == 1


# -- a real Redis --------------------------------------------------------------------------------

def test_entries_altered_in_redis_are_misses(redis_server):
    settings = {**redis_server.cache_settings(), "enabled": True}
    config = AppConfig(cache=CacheSettings(**settings))
    raw = redis.Redis.from_url(redis_server.url)

    async def scenario() -> tuple[list[str], list[list]]:
        cache, embedder = ResponseCache(config.cache, model_versions(config)), Embedder()
        states = [await _embed(cache, embedder, ["a cat", "a dog", "a cow", "a pig"])]
        assert len(raw.keys("mmserve:cache:anonymous:*")) == 4
        cat, dog, cow, pig = (_key_of(raw, cache, text) for text in
                              ("a cat", "a dog", "a cow", "a pig"))
        last = raw.strlen(cat) - 1
        raw.setrange(cat, last, bytes([raw.getrange(cat, last, last)[0] ^ 0xFF]))  # in place
        raw.set(dog, raw.get(dog)[:TAG_BYTES + 3])  # cut short
        raw.set(cow, b"<f4\n" + np.full(4, 9.0, np.float32).tobytes())  # planted, unsigned
        foreign = EntrySigner(OTHER_SECRET.encode())
        raw.set(pig, foreign.sign(pig, b"<f4\n" + np.full(4, 9.0, np.float32).tobytes()))
        for text in ("a cat", "a dog", "a cow", "a pig"):
            states.append(await _embed(cache, embedder, [text]))
        states.append(await _embed(cache, embedder, ["a cat", "a dog", "a cow", "a pig"]))
        assert cache.counts[EMBEDDINGS, "invalid"] == 4
        await cache.store.close()
        return states, embedder.calls

    states, calls = asyncio.run(scenario())
    raw.close()
    assert states == [MISS, MISS, MISS, MISS, MISS, HIT]
    assert calls[1:] == [["a cat"], ["a dog"], ["a cow"], ["a pig"]]


async def _embed(cache: ResponseCache, embedder: Embedder, inputs: list[str]) -> str:
    asked = request()
    await cache.each(asked, EMBEDDINGS, MODEL, inputs, embedder)
    return asked.state.cache


def _key_of(raw: redis.Redis, cache: ResponseCache, text: str) -> str:
    key = cache_key(cache.settings.key_prefix, namespace(None), EMBEDDINGS, MODEL,
                    cache.versions[MODEL], text)
    assert raw.exists(key)
    return key
