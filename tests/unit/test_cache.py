"""The response cache (serve_app/cache.py, serve_app/cache_store.py) without Ray or models: keys,
the in-process LRU, per-input embeddings, Cache-Control, and a real redis-server (Debian's, as
`make system-deps` installs it) started here on a free loopback port, and killed mid-run."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from starlette.requests import Request

from cluster.redis_server import RedisServer
from deployments.core.config import AppConfig, CacheSettings, load_config
from deployments.core.generation import SamplingParams
from serve_app.cache import (
    BYPASS,
    CHAT,
    EMBEDDINGS,
    HIT,
    MISS,
    PARTIAL,
    TRANSCRIPTIONS,
    ResponseCache,
    cache_key,
    model_versions,
)
from serve_app.cache_signing import EntrySigner
from serve_app.cache_store import MemoryStore, RedisStore
from tests.unit.fake_embedder import Embedder

MODEL = "clip-vit-b-32"
ON = {"enabled": True, "chat": True}


def request(cache_control: str | None = None) -> Request:
    """A request of the anonymous API, as the front end hands it to the cache."""
    headers = [(b"cache-control", cache_control.encode())] if cache_control else []
    asked = Request({"type": "http", "method": "POST", "path": "/", "headers": headers})
    asked.state.tenant = None
    return asked


def run(coroutine):
    return asyncio.run(coroutine)


def make_cache(store=None, **settings) -> ResponseCache:
    config = AppConfig(cache=CacheSettings(**{**ON, **settings}))
    return ResponseCache(config.cache, model_versions(config), store=store)


# -- keys --------------------------------------------------------------------------------------

def test_a_key_changes_with_namespace_model_version_route_and_every_argument():
    params = SamplingParams(max_tokens=8, temperature=0.0)
    messages = [{"role": "user", "content": "hi"}]
    base = cache_key("p", "ns", CHAT, "m", "v1", (messages, params))
    assert base == cache_key("p", "ns", CHAT, "m", "v1", ([dict(messages[0])], params))
    others = [
        cache_key("p", "other", CHAT, "m", "v1", (messages, params)),
        cache_key("p", "ns", CHAT, "other", "v1", (messages, params)),
        cache_key("p", "ns", CHAT, "m", "v2", (messages, params)),
        cache_key("p", "ns", TRANSCRIPTIONS, "m", "v1", (messages, params)),
        cache_key("q", "ns", CHAT, "m", "v1", (messages, params)),
        cache_key("p", "ns", CHAT, "m", "v1", ([{"role": "user", "content": "hi!"}], params)),
        cache_key("p", "ns", CHAT, "m", "v1", (messages, SamplingParams(9, 0.0))),
        cache_key("p", "ns", CHAT, "m", "v1", (messages, SamplingParams(8, 0.0, stop=("x",)))),
        cache_key("p", "ns", CHAT, "m", "v1", (messages, SamplingParams(8, 0.0, seed=1))),
    ]
    assert len({base, *others}) == len(others) + 1


def test_bytes_enter_a_key_by_their_sha256_and_text_differs_from_bytes():
    audio = b"RIFF" + bytes(1000)
    assert cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (audio, "en")) == \
        cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (bytearray(audio), "en"))
    assert cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (audio, "en")) != \
        cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (audio, None))
    assert cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (audio + b"\0", "en")) != \
        cache_key("p", "ns", TRANSCRIPTIONS, "w", "v", (audio, "en"))
    assert cache_key("p", "ns", EMBEDDINGS, MODEL, "v", "abc") != \
        cache_key("p", "ns", EMBEDDINGS, MODEL, "v", b"abc")


def test_a_model_version_follows_its_own_engine_config_and_the_cache_version():
    base = model_versions(AppConfig())
    vision = model_versions(load_config({"vision": {"engine": {"dtype": "bfloat16"}}}))
    assert vision[MODEL] != base[MODEL] and vision[MODEL + "-image"] == vision[MODEL]
    assert vision["whisper-base"] == base["whisper-base"]
    assert vision["smollm2-135m-instruct"] == base["smollm2-135m-instruct"]
    audio = model_versions(load_config({"audio": {"engine": {"beam_size": 5}}}))
    assert audio["whisper-base"] != base["whisper-base"]
    salted = model_versions(load_config({"cache": {"version": "weights-2"}}))
    assert all(salted[name] != base[name] for name in base)


TEXT_MODEL = "smollm2-135m-instruct"
CANARY = {"weight": 0.1, "overrides": {"version": "v2"}}


def test_a_model_version_follows_its_groups_version_and_canary_but_not_its_scale():
    base = model_versions(AppConfig())
    renamed = model_versions(load_config({"text": {"version": "rev-2"}}))
    assert renamed[TEXT_MODEL] != base[TEXT_MODEL] and renamed[MODEL] == base[MODEL]
    canaried = model_versions(load_config({"text": {"canary": CANARY}}))
    assert canaried[TEXT_MODEL] not in (base[TEXT_MODEL], renamed[TEXT_MODEL])
    promoted = model_versions(load_config({"text": {"version": "v2"}}))
    assert promoted[TEXT_MODEL] not in (base[TEXT_MODEL], canaried[TEXT_MODEL])
    reweighted = model_versions(load_config({"text": {"canary": {**CANARY, "weight": 0.5}}}))
    assert reweighted == canaried
    scaled = model_versions(load_config({"text": {"num_replicas": 3, "max_surge_percent": 0,
                                                  "batching": {"max_batch_size": 2}}}))
    assert scaled == base


def test_after_a_rollout_no_answer_of_the_old_version_comes_from_the_cache():
    store, signer = MemoryStore(1 << 20), EntrySigner(b"s" * 32)  # one store, as Redis
    answers = iter(["from v1", "from v2"])

    async def compute() -> dict:
        return {"text": next(answers)}

    def answer(config: AppConfig) -> dict:
        cache = ResponseCache(config.cache, model_versions(config), store=store, signer=signer)
        return run(cache.one(request(), CHAT, TEXT_MODEL, ["hi"], compute))

    old = load_config({"cache": {**ON, "chat": True}, "text": {"version": "v1"}})
    new = load_config({"cache": {**ON, "chat": True}, "text": {"version": "v2"}})
    assert answer(old) == {"text": "from v1"}
    assert answer(old) == {"text": "from v1"}  # a hit before the rollout
    assert answer(new) == {"text": "from v2"}


def test_the_same_input_never_hits_across_models():
    cache, embed = make_cache(), Embedder()
    run(cache.each(request(), EMBEDDINGS, MODEL, ["a cat"], embed))
    run(cache.each(request(), EMBEDDINGS, MODEL + "-image", ["a cat"], embed))
    assert embed.calls == [["a cat"], ["a cat"]]


# -- the in-process store ------------------------------------------------------------------------

def test_memory_store_evicts_least_recently_used_by_bytes():
    entry = 10 + 100 + 64  # key, value, overhead
    store = MemoryStore(max_bytes=3 * entry)
    for key in ("key-000001", "key-000002", "key-000003"):
        store.set(key, bytes(100), ttl_s=60)
    assert store.get("key-000001") is not None  # now the most recently used
    store.set("key-000004", bytes(100), ttl_s=60)
    assert store.get("key-000002") is None and store.evictions == 1
    assert all(store.get(k) is not None for k in ("key-000001", "key-000003", "key-000004"))
    assert store.bytes == 3 * entry
    store.set("key-000005", bytes(3 * entry), ttl_s=60)  # larger than the whole store
    assert store.get("key-000005") is None and store.bytes == 3 * entry
    store.set("key-000001", bytes(300), ttl_s=60)  # replacing one frees its bytes first
    assert store.bytes <= 3 * entry and store.get("key-000001") == bytes(300)


def test_memory_store_entries_expire_after_their_ttl():
    now = [100.0]
    store = MemoryStore(max_bytes=10_000, clock=lambda: now[0])
    store.set("a", b"1", ttl_s=5)
    now[0] = 104.9
    assert store.get("a") == b"1"
    now[0] = 105.0
    assert store.get("a") is None and store.bytes == 0


def test_answers_past_max_item_bytes_are_not_stored():
    cache, embed = make_cache(max_item_bytes=8), Embedder()
    run(cache.each(request(), EMBEDDINGS, MODEL, ["a cat"], embed))
    run(cache.each(request(), EMBEDDINGS, MODEL, ["a cat"], embed))
    assert len(embed.calls) == 2 and cache.counts[EMBEDDINGS, "store"] == 0


# -- routes' lookups ---------------------------------------------------------------------------

def test_embeddings_compute_only_the_inputs_not_cached_each_distinct_one_once():
    cache, embed = make_cache(), Embedder()
    first = request()
    run(cache.each(first, EMBEDDINGS, MODEL, ["a cat", "a dog"], embed))
    assert first.state.cache == MISS
    second = request()
    vectors = run(cache.each(second, EMBEDDINGS, MODEL, ["a dog", "a bird!", "a cat", "a bird!"],
                             embed))
    assert embed.calls[-1] == ["a bird!"]
    assert [v[0] for v in vectors] == [5.0, 7.0, 5.0, 7.0]
    assert all(v.dtype == np.float32 for v in vectors)
    assert second.state.cache == PARTIAL
    third = request()
    run(cache.each(third, EMBEDDINGS, MODEL, ["a bird!", "a cat"], embed))
    assert third.state.cache == HIT and len(embed.calls) == 2
    assert cache.counts[EMBEDDINGS, HIT] == 4 and cache.counts[EMBEDDINGS, MISS] == 4


def test_image_bytes_hit_by_content():
    cache, embed = make_cache(), Embedder()
    image = bytes(range(256)) * 4
    run(cache.each(request(), EMBEDDINGS, MODEL + "-image", [image], embed))
    run(cache.each(request(), EMBEDDINGS, MODEL + "-image", [bytes(image)], embed))
    assert len(embed.calls) == 1


def test_no_cache_computes_and_stores_and_no_store_stores_nothing():
    cache, embed = make_cache(), Embedder()
    asked = request("no-cache")
    run(cache.each(asked, EMBEDDINGS, MODEL, ["a cat"], embed))
    run(cache.each(request("max-age=0, No-Cache"), EMBEDDINGS, MODEL, ["a cat"], embed))
    assert asked.state.cache == BYPASS and len(embed.calls) == 2
    hit = request()
    run(cache.each(hit, EMBEDDINGS, MODEL, ["a cat"], embed))
    assert hit.state.cache == HIT and len(embed.calls) == 2  # no-cache still stored
    run(cache.each(request("no-store"), EMBEDDINGS, MODEL, ["a dog"], embed))
    run(cache.each(request(), EMBEDDINGS, MODEL, ["a dog"], embed))
    assert embed.calls[-2:] == [["a dog"], ["a dog"]]


def test_one_answer_routes_hit_on_equal_arguments_only():
    cache, calls = make_cache(), []

    async def transcribe(language):
        calls.append(language)
        return {"text": "hello", "language": language or "en", "segments": []}

    audio = b"RIFF" + bytes(64)
    first = run(cache.one(request(), TRANSCRIPTIONS, "whisper-base", (audio, None),
                          lambda: transcribe(None)))
    hit = request()
    again = run(cache.one(hit, TRANSCRIPTIONS, "whisper-base", (audio, None),
                          lambda: transcribe(None)))
    run(cache.one(request(), TRANSCRIPTIONS, "whisper-base", (audio, "de"),
                  lambda: transcribe("de")))
    assert first == again and hit.state.cache == HIT and calls == [None, "de"]


def test_a_chat_that_is_not_deterministic_bypasses_the_cache():
    cache, calls = make_cache(), []

    async def generate():
        calls.append(1)
        return {"text": "Paris.", "finish_reason": "stop", "prompt_tokens": 9,
                "completion_tokens": 2}

    args = ([{"role": "user", "content": "Capital?"}], SamplingParams(16, 0.7))
    for _ in range(2):
        sampled = request()
        run(cache.one(sampled, CHAT, "smollm2-135m-instruct", args, generate, cacheable=False))
        assert sampled.state.cache == BYPASS
    assert len(calls) == 2 and cache.counts[CHAT, "store"] == 0


def test_a_route_opted_out_or_a_cache_off_is_not_consulted():
    for settings in ({"embeddings": False}, {"enabled": False}):
        cache, embed = make_cache(**settings), Embedder()
        for _ in range(2):
            plain = request()
            run(cache.each(plain, EMBEDDINGS, MODEL, ["a cat", "a cat"], embed))
            assert getattr(plain.state, "cache", None) is None
        assert embed.calls == [["a cat", "a cat"]] * 2
    assert not AppConfig().cache.enabled and not AppConfig().cache.chat


# -- a real Redis ------------------------------------------------------------------------------

def redis_cache(server: RedisServer, **settings) -> ResponseCache:
    return make_cache(**server.cache_settings(), redis_timeout_s=0.2, redis_retry_s=0.2,
                      **settings)


def test_redis_serves_hits_and_misses_for_each_route(redis_server):
    async def scenario():
        cache, embed = redis_cache(redis_server), Embedder()
        states = []
        for inputs in (["a cat", "a dog"], ["a dog", "a cow"], ["a cow", "a cat"]):
            asked = request()
            await cache.each(asked, EMBEDDINGS, MODEL, inputs, embed)
            states.append(asked.state.cache)
        result = {"text": "hello", "language": "en", "segments": [{"start": 0.0, "end": 1.5}]}

        async def transcribe():
            return result

        for _ in range(2):
            asked = request()
            answer = await cache.one(asked, TRANSCRIPTIONS, "whisper-base", (b"wav", "en"),
                                     transcribe)
            assert answer == result
            states.append(asked.state.cache)
        await cache.store.close()
        return states, embed.calls

    states, calls = run(scenario())
    assert states == [MISS, PARTIAL, HIT, MISS, HIT]
    assert calls == [["a cat", "a dog"], ["a cow"]]


def test_redis_entries_expire_after_their_ttl(redis_server):
    async def scenario():
        store = RedisStore(redis_server.url, timeout_s=0.5, retry_s=0.0)
        await store.set_many([("k", b"v")], ttl_s=0.15)
        present = await store.get_many(["k", "absent"])
        await asyncio.sleep(0.3)
        gone = await store.get_many(["k"])
        await store.close()
        return present, gone

    assert run(scenario()) == ([b"v", None], [None])


def test_redis_killed_mid_run_computes_counts_and_logs_once(redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="ray.serve")

    async def scenario():
        cache, embed = redis_cache(redis_server), Embedder()
        await cache.each(request(), EMBEDDINGS, MODEL, ["a cat"], embed)
        warm = request()
        await cache.each(warm, EMBEDDINGS, MODEL, ["a cat"], embed)
        redis_server.kill()
        states = []
        started = time.perf_counter()
        for _ in range(5):
            asked = request()
            vectors = await cache.each(asked, EMBEDDINGS, MODEL, ["a cat"], embed)
            assert vectors[0][0] == 5.0
            states.append(asked.state.cache)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.25)  # past redis_retry_s: the next request tries Redis again
        redis_server.start()
        await cache.each(request(), EMBEDDINGS, MODEL, ["a cat"], embed)
        back = request()
        await cache.each(back, EMBEDDINGS, MODEL, ["a cat"], embed)
        await cache.store.close()
        return warm.state.cache, states, elapsed, back.state.cache, cache.counts

    warm, states, elapsed, back, counts = run(scenario())
    assert warm == HIT and states == [MISS] * 5 and back == HIT
    assert counts[EMBEDDINGS, "error"] >= 1
    assert elapsed < 2.0  # short timeouts, and no retries while it is down
    failures = [r for r in caplog.records if "store failed" in r.getMessage()]
    assert len(failures) == 1
