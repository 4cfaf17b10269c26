"""The response cache keeps each tenant's answers apart (serve_app/cache.py): the same input
sent by two tenants is two keys, two computations and two misses, unless both opted into the
shared namespace; the anonymous API has one namespace of its own."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from deployments.core.config import AppConfig, CacheSettings
from serve_app.cache import (
    ANONYMOUS_NAMESPACE,
    EMBEDDINGS,
    HIT,
    MISS,
    SHARED_NAMESPACE,
    TRANSCRIPTIONS,
    ResponseCache,
    cache_key,
    model_versions,
    namespace,
)
from serve_app.cache_store import MemoryStore
from serve_app.tenants import Tenant
from tests.unit.fake_embedder import Embedder

MODEL = "clip-vit-b-32"
TEAM_A, TEAM_B = Tenant(name="team-a"), Tenant(name="team-b")
SHARING_A = Tenant(name="team-a", cache_namespace="shared")
SHARING_C = Tenant(name="team-c", cache_namespace="shared")


def request_of(tenant: Tenant | None) -> Request:
    asked = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    asked.state.tenant = tenant
    return asked


def make_cache() -> tuple[ResponseCache, MemoryStore]:
    config = AppConfig(cache=CacheSettings(enabled=True))
    store = MemoryStore(max_bytes=1 << 20)
    return ResponseCache(config.cache, model_versions(config), store=store), store


def embed_as(cache: ResponseCache, tenant: Tenant | None, embed: Embedder,
             inputs: list[str]) -> str:
    """What X-Cache would say to `tenant` sending `inputs`."""
    asked = request_of(tenant)
    asyncio.run(cache.each(asked, EMBEDDINGS, MODEL, inputs, embed))
    return asked.state.cache


def test_each_tenant_that_keeps_its_own_has_its_own_namespace():
    spaces = {namespace(tenant) for tenant in (TEAM_A, TEAM_B, None, SHARING_A,
                                                Tenant(name="shared"), Tenant(name="anonymous"))}
    assert len(spaces) == 6
    assert namespace(SHARING_A) == namespace(SHARING_C) == SHARED_NAMESPACE
    assert namespace(None) == ANONYMOUS_NAMESPACE
    assert Tenant(name="t").cache_namespace == "own"


def test_two_tenants_sending_the_same_input_get_two_keys():
    keys = {cache_key("p", namespace(tenant), EMBEDDINGS, MODEL, "v", "a cat")
            for tenant in (TEAM_A, TEAM_B)}
    assert len(keys) == 2
    assert all(key.startswith("p:tenant.") for key in keys)
    shared = {cache_key("p", namespace(tenant), EMBEDDINGS, MODEL, "v", "a cat")
              for tenant in (SHARING_A, SHARING_C)}
    assert len(shared) == 1


def test_a_tenant_never_hits_nor_sees_another_tenants_entry():
    cache, store = make_cache()
    embed = Embedder()
    assert embed_as(cache, TEAM_A, embed, ["a secret memo"]) == MISS
    assert embed_as(cache, TEAM_B, embed, ["a secret memo"]) == MISS
    assert embed.calls == [["a secret memo"], ["a secret memo"]]
    assert len(store.entries) == 2
    assert embed_as(cache, TEAM_A, embed, ["a secret memo"]) == HIT
    assert embed_as(cache, TEAM_B, embed, ["a secret memo"]) == HIT
    assert len(embed.calls) == 2


def test_tenants_that_opt_into_the_shared_namespace_share_entries():
    cache, store = make_cache()
    embed = Embedder()
    assert embed_as(cache, SHARING_A, embed, ["a cat"]) == MISS
    assert embed_as(cache, SHARING_C, embed, ["a cat"]) == HIT
    assert embed_as(cache, TEAM_B, embed, ["a cat"]) == MISS  # keeps its own
    assert len(embed.calls) == 2 and len(store.entries) == 2


def test_the_anonymous_api_has_one_namespace_apart_from_every_tenants():
    cache, _ = make_cache()
    embed = Embedder()
    assert embed_as(cache, None, embed, ["a cat"]) == MISS
    assert embed_as(cache, None, embed, ["a cat"]) == HIT
    assert embed_as(cache, SHARING_A, embed, ["a cat"]) == MISS
    assert len(embed.calls) == 2


def test_one_answer_routes_are_namespaced_too():
    cache, _ = make_cache()
    calls = []

    async def transcribe():
        calls.append(1)
        return {"text": "hello", "language": "en", "segments": []}

    states = []
    for tenant in (TEAM_A, TEAM_B, TEAM_A):
        asked = request_of(tenant)
        asyncio.run(cache.one(asked, TRANSCRIPTIONS, "whisper-base", (b"wav", "en"),
                              transcribe))
        states.append(asked.state.cache)
    assert states == [MISS, MISS, HIT] and len(calls) == 2


def test_a_request_whose_tenant_was_never_set_is_refused_not_served_from_any_namespace():
    cache, _ = make_cache()
    bare = Request({"type": "http", "method": "POST", "path": "/", "headers": []})
    with pytest.raises(AttributeError):
        asyncio.run(cache.each(bare, EMBEDDINGS, MODEL, ["a cat"], Embedder()))
