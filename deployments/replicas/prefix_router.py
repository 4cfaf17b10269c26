"""`text.routing: prefix`: a request router (Ray Serve's request-router API) that sends every
turn of a conversation to the same text replica, whose prefix cache holds its earlier turns.

The key is the conversation's opening: its messages up to and including the first user
message (the system prompt and the first question). Every later turn of that conversation
starts with the same messages, so it gets the same key; conversations that share only a system
prompt get different keys and spread over the replicas (each replica caches the shared system
prompt once). Replicas are ranked for a key by rendezvous hashing (highest
blake2b(key, replica) first), so a key keeps its replica while the group changes, except for the
keys of a replica that left. The router answers Serve with two ranks: the key's replica, then
the others; Serve takes the first rank unless that replica is at `max_ongoing_requests`, then
the least loaded of the second. When the key's replica holds more than `imbalanced_threshold`
requests beyond the least loaded one, all replicas form one rank and the least loaded wins: a
hot conversation never piles onto one replica. The queue lengths are Serve's cached ones; a
length the cache lacks (none yet, or older than Serve's cache timeout) is probed first, as
Serve's own routers do, and a key's replica that answers no probe is not preferred. A call
without a message list (engine_stats, batch_stats, health) is routed as Serve's default router
does.

Why the app's own router and not Ray's `PrefixCacheAffinityRouter` (kept as `routing:
ray_prefix`, deployments/replicas/ray_prefix_router.py, for comparison): Ray's looks for a
`messages` or `prompt` attribute on an argument (an OpenAI request object), which our
`generate(messages, params, deadline)` does not have, so it fails every request as shipped;
`ray.serve.llm` itself does not import without pyarrow; and it keeps a character prefix tree in
a detached actor it calls with blocking `ray.get`s two or three times per request, on the
caller's routing loop. Hashing the opening is stateless: no actor, no extra hop, the same answer
in every ingress replica.

Stdlib and Ray only, nothing else from this project: Serve pickles this module by value for
every process that routes to the text group.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

DEFAULT_IMBALANCED_THRESHOLD = 8


def opening(messages: Any) -> list[Any] | None:
    """The messages up to and including the first user message (all of them when none is a
    user message); None when `messages` is not a non-empty message list."""
    if not isinstance(messages, list | tuple) or not messages:
        return None
    for i, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return list(messages[:i + 1])
    return list(messages)


def affinity_key(args: tuple | list | None) -> bytes | None:
    """The routing key of a call whose first argument is a chat's message list."""
    if not args:
        return None
    head = opening(args[0])
    if head is None:
        return None
    text = json.dumps(head, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def rank(key: bytes, replica_ids: list[str]) -> list[str]:
    """`replica_ids` ordered by rendezvous hash for `key`: the first is the key's replica."""
    def score(replica_id: str) -> bytes:
        return hashlib.blake2b(key + replica_id.encode(), digest_size=8).digest()
    return sorted(replica_ids, key=score, reverse=True)


def imbalanced(own: int | None, others: list[int | None], threshold: float) -> bool:
    """Whether the key's replica, holding `own` requests, is more than `threshold` past the
    least loaded of the others (unknown lengths never count as imbalance)."""
    known = [n for n in others if n is not None]
    return own is not None and bool(known) and own - min(known) > threshold


class PrefixAffinityRouter(RequestRouter):
    def initialize_state(self, imbalanced_threshold: float = DEFAULT_IMBALANCED_THRESHOLD,
                         **_: Any) -> None:
        self._imbalanced_threshold = imbalanced_threshold

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None,
                              ) -> list[list[RunningReplica]]:
        if pending_request is not None:
            # Past the ranks offered (every replica full), wait out Serve's backoff.
            pending_request.routing_context.should_backoff = True
        key = affinity_key(pending_request.args) if pending_request is not None else None
        if key is None or len(candidate_replicas) < 2:
            return [_two_random(candidate_replicas)]
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        ranked = [by_id[i] for i in rank(key, list(by_id))]
        lengths = await self._queue_lens(ranked)
        if lengths[0] is None or imbalanced(lengths[0], lengths[1:],
                                            self._imbalanced_threshold):
            return [ranked]  # one rank: the least loaded wins
        return [ranked[:1], ranked[1:]]

    async def _queue_lens(self, replicas: list[RunningReplica]) -> list[int | None]:
        """Each replica's queue length: Serve's cached one, else a probe's answer (None for
        a replica that gave none), as Serve's own routers get a length the cache lacks."""
        lengths = {r.replica_id.unique_id: self._cached_queue_len(r) for r in replicas}
        unknown = [r for r in replicas if lengths[r.replica_id.unique_id] is None]
        if unknown:  # the answers come in no particular order
            for replica, length in await self._probe_queue_lens(unknown, 0):
                lengths[replica.replica_id.unique_id] = length
        return [lengths[r.replica_id.unique_id] for r in replicas]

    def _cached_queue_len(self, replica: RunningReplica) -> int | None:
        if not self._use_replica_queue_len_cache:
            return None
        return self._replica_queue_len_cache.get(replica.replica_id)


def _two_random(replicas: list[RunningReplica]) -> list[RunningReplica]:
    """Serve's power of two choices: two replicas at random, the less loaded wins."""
    return random.sample(replicas, min(2, len(replicas)))
