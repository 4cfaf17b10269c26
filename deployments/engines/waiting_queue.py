"""The order in which a text engine serves the requests waiting for their prefill.

Interactive requests before batch ones, then the tenants of a class by weighted fair share, then
within a tenant the policy (deployments/core/fair_share.py): each tenant of a class waits in a
sub-queue of its own, in the policy's order, and the next request is the head of the sub-queue
whose tenant has had the least service for its weight. "fifo" serves a tenant's requests by
arrival. "slo" serves the earliest objective first (absolute epoch
seconds by which the request's SLO wants it answered); requests without an objective come after
every request that has one, and equal objectives keep their arrival order. The order is fixed
when a request arrives, so a queue never changes its policy once it holds requests.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from deployments.core.fair_share import ANONYMOUS, FairShares, Share

T = TypeVar("T")
POLICIES = ("fifo", "slo")
SortKey = tuple[int, float, int]


def serving_key(policy: str, objective: float | None, arrival: int) -> SortKey:
    """Smaller first: by arrival under "fifo"; under "slo" by objective, None after every
    objective, then by arrival."""
    if policy != "slo":
        return (0, 0.0, arrival)
    return (1, 0.0, arrival) if objective is None else (0, objective, arrival)


class WaitingQueue(Generic[T]):
    """Requests in serving order. `add` may be called from any thread while the model thread
    takes requests out."""

    def __init__(self, policy: str = "fifo") -> None:
        if policy not in POLICIES:
            raise ValueError(f"queue policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        # A heap per class and tenant; arrivals are unique, so items are never compared.
        self._tenants: dict[tuple[int, str | None], list[tuple[SortKey, Share, T]]] = {}
        self._shares = FairShares()
        self._length = 0
        self._arrivals = itertools.count()
        self._lock = threading.Lock()

    def add(self, item: T, objective: float | None = None, share: Share = ANONYMOUS) -> None:
        with self._lock:
            key = serving_key(self.policy, objective, next(self._arrivals))
            heapq.heappush(self._tenants.setdefault(share.group, []), (key, share, item))
            self._length += 1

    def pop_if(self, take: Callable[[T], bool]) -> T | None:
        """The first request when `take` accepts it; else None, and it stays first."""
        with self._lock:
            heap = self._first_heap()
            if heap is None or not take(heap[0][2]):
                return None
            return self._pop(heap)

    def drain(self) -> list[T]:
        """Every request, in serving order; the queue is left empty."""
        with self._lock:
            items = []
            while (heap := self._first_heap()) is not None:
                items.append(self._pop(heap))
            return items

    def _first_heap(self) -> list[tuple[SortKey, Share, T]] | None:
        """The sub-queue served next: the best class, the least virtual time, the oldest head."""
        if len(self._tenants) == 1:
            return next(iter(self._tenants.values()))
        return min(self._tenants.values(), default=None,
                   key=lambda heap: (heap[0][1].rank, self._shares.start(heap[0][1]),
                                     heap[0][0][-1]))

    def _pop(self, heap: list[tuple[SortKey, Share, T]]) -> T:
        _, share, item = heapq.heappop(heap)
        self._shares.serve(share)
        if not heap:
            del self._tenants[share.group]
        self._length -= 1
        return item

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0
