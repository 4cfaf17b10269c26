"""The order in which a text engine serves the requests waiting for their prefill.

"fifo" serves them by arrival. "slo" serves the earliest objective first (absolute epoch
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
        self._heap: list[tuple[SortKey, T]] = []  # arrivals are unique: items never compared
        self._arrivals = itertools.count()
        self._lock = threading.Lock()

    def add(self, item: T, objective: float | None = None) -> None:
        with self._lock:
            key = serving_key(self.policy, objective, next(self._arrivals))
            heapq.heappush(self._heap, (key, item))

    def pop_if(self, take: Callable[[T], bool]) -> T | None:
        """The first request when `take` accepts it; else None, and it stays first."""
        with self._lock:
            if not self._heap or not take(self._heap[0][1]):
                return None
            return heapq.heappop(self._heap)[1]

    def drain(self) -> list[T]:
        """Every request, in serving order; the queue is left empty."""
        with self._lock:
            items, self._heap = self._heap, []
        return [item for _, item in sorted(items, key=lambda entry: entry[0])]

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)
