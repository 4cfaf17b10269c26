"""The zero-shot label cache: least recently used out first, and a request always gets the
vectors of every label it asked for, whatever other requests did to the cache meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from deployments.replicas.label_cache import LabelCache


class Embedder:
    """Each label's vector is its name in capitals; records what it was asked to embed. With
    `held`, it waits for `release` before it answers."""

    def __init__(self, held: bool = False) -> None:
        self.asked: list[list[str]] = []
        self.started, self.release = asyncio.Event(), asyncio.Event()
        if not held:
            self.release.set()

    async def __call__(self, labels: list[str]) -> list[str]:
        self.asked.append(list(labels))
        self.started.set()
        await self.release.wait()
        return [label.upper() for label in labels]


def test_only_missing_labels_are_embedded_once_each_and_in_the_requests_order():
    async def scenario():
        cache, embed = LabelCache[str](capacity=8), Embedder()
        first = await cache.vectors(["cat", "dog", "cat"], embed)
        second = await cache.vectors(["dog", "bird"], embed)
        return first, second, embed.asked

    first, second, asked = asyncio.run(scenario())
    assert first == ["CAT", "DOG", "CAT"] and second == ["DOG", "BIRD"]
    assert asked == [["cat", "dog"], ["bird"]]


def test_the_least_recently_used_label_is_evicted_first():
    async def scenario():
        cache, embed = LabelCache[str](capacity=2), Embedder()
        for labels in (["a"], ["b"], ["a"], ["c"]):  # a was used after b: b goes
            await cache.vectors(labels, embed)
        return cache

    cache = asyncio.run(scenario())
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2


def test_a_request_needing_more_labels_than_the_cache_holds_gets_them_all():
    async def scenario():
        cache = LabelCache[str](capacity=2)
        return cache, await cache.vectors(["a", "b", "c", "a"], Embedder())

    cache, vectors = asyncio.run(scenario())
    assert vectors == ["A", "B", "C", "A"] and len(cache) == 2


def test_a_label_counted_cached_is_read_even_if_other_requests_evict_it_meanwhile():
    async def scenario():
        cache = LabelCache[str](capacity=2)
        await cache.vectors(["a"], Embedder())
        slow = Embedder(held=True)
        waiting = asyncio.ensure_future(cache.vectors(["a", "x"], slow))  # a cached, x not
        await slow.started.wait()
        await cache.vectors(["y", "z"], Embedder())  # fills the cache: a is evicted
        evicted = "a" not in cache
        slow.release.set()
        return evicted, await waiting

    evicted, vectors = asyncio.run(scenario())
    assert evicted and vectors == ["A", "X"]


def test_a_failed_embedding_caches_nothing_and_reaches_the_caller():
    async def fails(labels: list[str]) -> list[str]:
        raise ValueError("the model failed")

    async def scenario():
        cache = LabelCache[str](capacity=2)
        with pytest.raises(ValueError, match="the model failed"):
            await cache.vectors(["a"], fails)
        return len(cache)

    assert asyncio.run(scenario()) == 0


def test_the_capacity_must_be_positive():
    with pytest.raises(ValueError):
        LabelCache(capacity=0)
