"""Counts what batching did inside one replica: model calls and their sizes."""

from __future__ import annotations

import os
import sys
from collections import defaultdict, deque
from typing import Any

from serve_app import metrics

RECENT_BATCHES = 64


class BatchStats:
    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)
        self.recent: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=RECENT_BATCHES))
        self.events: dict[str, int] = defaultdict(int)

    def count(self, event: str) -> None:
        self.events[event] += 1

    def record(self, method: str, size: int) -> None:
        self.calls[method] += 1
        self.items[method] += size
        self.recent[method].append(size)
        metrics.batch_size().observe(size, tags={"method": method})
        metrics.model_calls().inc(tags={"method": method})
        metrics.batch_items().inc(size, tags={"method": method})

    def snapshot(self) -> dict[str, Any]:
        """{"pid", "python": the replica's interpreter, "methods": {method: {model_calls,
        items, recent_batches}}, "events": {name: count}}"""
        methods = {m: {"model_calls": self.calls[m], "items": self.items[m],
                       "recent_batches": list(self.recent[m])} for m in self.calls}
        return {"pid": os.getpid(), "python": sys.executable, "methods": methods,
                "events": dict(self.events)}
