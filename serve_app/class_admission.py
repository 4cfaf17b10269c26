"""Which class an ingress replica turns away first when it is full: batch requests may fill
only the first (1 - `interactive_reserve`) of its `max_concurrent_requests`; the rest is kept
for interactive ones. Under overload the batch class gets the 429s first, while interactive
requests are still admitted, and inside the replicas' queues interactive requests go ahead
(docs/scheduling.md)."""

from __future__ import annotations

import math

from deployments.core.fair_share import Priority


def concurrency_cap(max_concurrent: int, interactive_reserve: float, priority: Priority) -> int:
    """Requests in flight on an ingress replica at which one of `priority` is turned away; a
    batch request always has at least one place."""
    if priority != "batch":
        return max_concurrent
    return max(1, math.floor(max_concurrent * (1.0 - interactive_reserve) + 1e-9))
