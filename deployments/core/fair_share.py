"""Who is served first when tenants share a queue: the request's class, then its tenant's
weighted fair share within the class, then the queue's own policy within the tenant.

    serving order = (class, the tenant's virtual time, the policy's order within the tenant)

- Class: every interactive item before every batch item (strict priority: under sustained
  interactive overload batch waits, and its deadline drops it).
- Fair share among the tenants of one class: start-time fair queuing over per-tenant
  sub-queues. A tenant's virtual time is the service it has had divided by its weight; the
  next item served is the head of the waiting tenant with the least, and serving it adds
  1 / weight (one item costs one: a batch row, a text request). A tenant that was idle starts
  at the class's virtual time (that of the last item served), so idling earns no credit to
  spend in a burst later. Over any stretch in which two tenants both wait, each gets its
  weight's fraction of the items served, to within one item.
- Within a tenant: the queue's policy (fifo: arrival; slo: earliest objective first).

One tenant in one class (the anonymous API) is served in the policy's order alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Priority = Literal["interactive", "batch"]
RANKS: dict[str, int] = {"interactive": 0, "batch": 1}  # lower is served first


@dataclass(frozen=True)
class Share:
    """Whose an item is, to a queue: its class, its tenant (None: the anonymous API) and that
    tenant's weight."""

    priority: Priority = "interactive"
    tenant: str | None = None
    weight: float = 1.0

    @property
    def rank(self) -> int:
        return RANKS[self.priority]

    @property
    def group(self) -> tuple[int, str | None]:
        """The sub-queue the item waits in: its class and its tenant."""
        return self.rank, self.tenant


ANONYMOUS = Share()


class FairShares:
    """The virtual times of the tenants of each class (start-time fair queuing)."""

    def __init__(self) -> None:
        self._next: dict[tuple[int, str | None], float] = {}  # a tenant's next start, at least
        self._now: dict[int, float] = {}  # a class's virtual time: the last start served

    def start(self, share: Share) -> float:
        """The virtual time at which the tenant's next item starts."""
        return max(self._next.get(share.group, 0.0), self._now.get(share.rank, 0.0))

    def serve(self, share: Share) -> None:
        """Counts one item of the tenant served now."""
        self.reached(share.rank, self.stamp(share))

    def stamp(self, share: Share) -> float:
        """A new item's virtual start, given when it arrives rather than when it is served
        (to follow a queue one cannot see into): the tenant's next start moves on, the class's
        virtual time waits for `reached`."""
        start = self.start(share)
        self._next[share.group] = start + 1.0 / share.weight
        return start

    def reached(self, rank: int, start: float) -> None:
        """An item of class `rank` that starts at virtual time `start` is being served."""
        self._now[rank] = max(start, self._now.get(rank, 0.0))

    def order(self, items: Iterable[T], share_of: Callable[[T], Share],
              key: Callable[[T], Any] | None = None) -> list[T]:
        """`items`, given in arrival order, in serving order (see the module), none served:
        within a tenant by `key` (None: arrival). Equal virtual times go to the tenant whose
        first item came first."""
        groups: dict[Hashable, list[T]] = {}
        for item in items:
            groups.setdefault(share_of(item).group, []).append(item)
        if key is not None:
            for waiting in groups.values():
                waiting.sort(key=key)
        if len(groups) <= 1:
            return next(iter(groups.values()), [])
        ordered: list[T] = []
        for rank in sorted({rank for rank, _ in groups}):
            ordered += self._merge([waiting for (r, _), waiting in groups.items() if r == rank],
                                   share_of)
        return ordered

    def _merge(self, tenants: Sequence[list[T]], share_of: Callable[[T], Share]) -> list[T]:
        """One class's tenants' items interleaved by virtual start time."""
        heads = [(self.start(share_of(items[0])), index) for index, items in enumerate(tenants)]
        heapq.heapify(heads)
        taken = [0] * len(tenants)
        merged: list[T] = []
        while heads:
            start, index = heapq.heappop(heads)
            item = tenants[index][taken[index]]
            merged.append(item)
            taken[index] += 1
            if taken[index] < len(tenants[index]):
                heapq.heappush(heads, (start + 1.0 / share_of(item).weight, index))
        return merged
