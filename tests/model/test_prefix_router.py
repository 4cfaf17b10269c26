"""The prefix router's pure logic: a conversation's key, rendezvous ranks, the imbalance
fallback, the ranks it answers Serve with; Ray's router adapted to our arguments; the config."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from types import SimpleNamespace

import pytest

from deployments.core.config import load_config
from deployments.replicas.prefix_router import (
    PrefixAffinityRouter,
    affinity_key,
    imbalanced,
    opening,
    rank,
)
from deployments.replicas.serve_options import TEXT_ROUTERS, deployment_options

SYSTEM = {"role": "system", "content": "You are terse."}


def turn(first: str, *later: str) -> list[dict]:
    """A conversation: the system prompt, `first`, then each later user message after an
    answer."""
    messages = [SYSTEM, {"role": "user", "content": first}]
    for text in later:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]
    return messages


def test_every_turn_of_a_conversation_has_the_key_of_its_opening():
    assert opening(turn("a", "b", "c")) == turn("a")
    assert affinity_key((turn("a"), None, None)) == affinity_key((turn("a", "b", "c"),))
    assert affinity_key((turn("a"),)) != affinity_key((turn("b"),))
    other_system = [{"role": "system", "content": "Be verbose."}, *turn("a")[1:]]
    assert affinity_key((other_system,)) != affinity_key((turn("a"),))


def test_calls_without_a_message_list_have_no_key():
    assert affinity_key(()) is None and affinity_key(None) is None
    assert affinity_key(([],)) is None and affinity_key(("text",)) is None
    assert opening([SYSTEM]) == [SYSTEM]  # no user message: the whole list
    multimodal = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert affinity_key((multimodal,)) is not None


def test_rendezvous_ranks_spread_keys_and_move_only_a_departed_replicas():
    replicas = ["r1", "r2", "r3"]
    keys = [affinity_key((turn(f"question {i}"),)) for i in range(600)]
    home = {key: rank(key, replicas)[0] for key in keys}
    shares = Counter(home.values())
    assert set(shares) == set(replicas) and min(shares.values()) > 150
    assert all(sorted(rank(key, replicas)) == replicas for key in keys[:10])
    after = {key: rank(key, ["r1", "r3"])[0] for key in keys}
    assert all(after[key] == home[key] for key in keys if home[key] != "r2")
    assert rank(keys[0], list(reversed(replicas))) == rank(keys[0], replicas)


def test_imbalance_is_more_than_the_threshold_past_the_least_loaded():
    assert not imbalanced(10, [2], 8) and imbalanced(11, [2], 8)
    assert imbalanced(11, [None, 2, 30], 8)
    assert not imbalanced(None, [0], 8) and not imbalanced(50, [None], 8)


class Cache:
    def __init__(self, lengths: dict[str, int]) -> None:
        self.lengths = lengths

    def get(self, replica_id) -> int | None:
        return self.lengths.get(replica_id.unique_id)


def router(lengths: dict[str, int], threshold: float = 8,
           live: dict[str, int | None] | None = None) -> PrefixAffinityRouter:
    """A router whose cached queue lengths are `lengths`; a probe of a replica answers its
    `live` length (0 when not given; None: no answer), as Serve's probe does, in no particular
    order, and is recorded in `r.probed`."""
    r = object.__new__(PrefixAffinityRouter)  # Serve builds it with a live deployment
    r.initialize_state(imbalanced_threshold=threshold)
    r._use_replica_queue_len_cache = True
    r._replica_queue_len_cache = Cache(lengths)
    r.probed = []

    async def probe(candidates: list, backoff_index: int) -> list:
        r.probed.append(sorted(c.name for c in candidates))
        return [(c, (live or {}).get(c.name, 0)) for c in reversed(candidates)]

    r._probe_queue_lens = probe
    return r


def replicas(*names: str) -> list:
    return [SimpleNamespace(replica_id=SimpleNamespace(unique_id=n), name=n) for n in names]


def request(args: tuple) -> SimpleNamespace:
    return SimpleNamespace(args=args, routing_context=SimpleNamespace(should_backoff=False))


def choose(r: PrefixAffinityRouter, candidates: list, pending) -> list[list[str]]:
    ranks = asyncio.run(r.choose_replicas(candidates, pending))
    return [[replica.name for replica in group] for group in ranks]


def test_a_conversation_goes_to_its_replica_first_then_to_the_others():
    candidates = replicas("a", "b", "c")
    for first in ("x", "y", "z"):
        pending = request((turn(first, "more"), None, None))
        ranks = choose(router({}), candidates, pending)
        home = rank(affinity_key(pending.args), ["a", "b", "c"])
        assert ranks == [home[:1], home[1:]]
        assert pending.routing_context.should_backoff
        assert choose(router({}), candidates, request((turn(first),))) == ranks


def test_an_overloaded_home_replica_hands_the_request_to_the_least_loaded():
    pending = request((turn("x"),))
    home, other = rank(affinity_key(pending.args), ["a", "b"])
    assert choose(router({home: 9, other: 1}), replicas("a", "b"), pending) == [[home], [other]]
    assert choose(router({home: 10, other: 1}), replicas("a", "b"), pending) == [[home, other]]


def test_a_home_replica_whose_length_is_not_cached_is_probed_and_spills_when_loaded():
    pending = request((turn("x"),))
    home, other = rank(affinity_key(pending.args), ["a", "b"])
    busy = router({other: 0}, live={home: 30})
    assert choose(busy, replicas("a", "b"), pending) == [[home, other]]
    assert busy.probed == [[home]]  # only the length the cache lacked
    idle = router({other: 0}, live={home: 2})
    assert choose(idle, replicas("a", "b"), pending) == [[home], [other]]


def test_a_loaded_home_spills_when_only_the_others_lengths_are_not_cached():
    pending = request((turn("x"),))
    home, other = rank(affinity_key(pending.args), ["a", "b", "c"])[:2]
    r = router({home: 20}, live={other: 1})
    assert choose(r, replicas("a", "b", "c"), pending) == [
        rank(affinity_key(pending.args), ["a", "b", "c"])]
    assert r.probed == [sorted(set("abc") - {home})]


def test_a_home_replica_that_answers_no_probe_is_not_preferred():
    pending = request((turn("x"),))
    r = router({}, live={rank(affinity_key(pending.args), ["a", "b"])[0]: None})
    assert choose(r, replicas("a", "b"), pending) == [rank(affinity_key(pending.args),
                                                           ["a", "b"])]


def test_calls_without_messages_and_single_replicas_route_as_serve_does():
    random.seed(0)
    picked = choose(router({}), replicas("a", "b", "c"), request(()))
    assert len(picked) == 1 and len(picked[0]) == 2
    assert choose(router({}), replicas("a"), request((turn("x"),))) == [["a"]]
    assert choose(router({}), replicas("a", "b"), None)[0] in (["a", "b"], ["b", "a"])


def test_rays_router_reads_the_message_list_our_text_group_takes():
    from deployments.replicas.ray_prefix_router import RayPrefixRouter

    r = object.__new__(RayPrefixRouter)
    pending = SimpleNamespace(args=(turn("hello"), None, None))
    assert r._extract_text_from_request(pending) == "You are terse.hello"
    assert r._extract_text_from_request(SimpleNamespace(args=("a plain prompt",))) \
        == "a plain prompt"
    with pytest.raises(ValueError):
        r._extract_text_from_request(SimpleNamespace(args=(42,)))


def test_routing_becomes_the_text_groups_request_router_config():
    default = deployment_options(load_config({"text": {"routing": "default"}}).text, "T")
    assert "request_router_config" not in default
    assert load_config({}).text.routing == "prefix"
    for routing, path in TEXT_ROUTERS.items():
        config = load_config({"text": {"routing": routing, "routing_imbalanced_threshold": 3}})
        assert deployment_options(config.text, "T")["request_router_config"] == {
            "request_router_class": path, "request_router_kwargs": {"imbalanced_threshold": 3}}
    assert "request_router_config" not in deployment_options(load_config({}).vision, "V")


def test_both_routers_pickle_by_value_for_callers_without_this_checkout():
    from ray.serve.config import RequestRouterConfig

    for path in TEXT_ROUTERS.values():
        config = RequestRouterConfig(request_router_class=path)
        assert config.get_request_router_class().__name__ == path.rsplit(":", 1)[1]
        assert b"deployments." in config.get_serialized_request_router_cls()
