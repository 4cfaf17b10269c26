"""Counts what batching did inside one replica: model calls, their sizes and their busy time."""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deployments.replicas import metrics

RECENT_BATCHES = 64


class BatchStats:
    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.items: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.recent: dict[str, deque[int]] = defaultdict(lambda: deque(maxlen=RECENT_BATCHES))
        self.events: dict[str, int] = defaultdict(int)

    def count(self, event: str) -> None:
        self.events[event] += 1

    def batcher_hooks(self, method: str) -> dict[str, Callable]:
        """A DynamicBatcher's callbacks: its events counted here, its waits and queue length
        exported as metrics tagged with `method`."""
        tags = {"method": method}

        def waited(waits: dict[str, tuple[float, float]]) -> None:
            metrics.queue_wait().observe(waits["queue"][1], tags=tags)
            metrics.batch_wait().observe(waits["batch"][1], tags=tags)
            metrics.model_call().observe(waits["model"][1], tags=tags)

        return {"on_event": self.count, "on_wait": waited,
                "on_queue_length": lambda length: metrics.queue_length().set(length, tags=tags)}

    def record(self, method: str, size: int) -> None:
        self.calls[method] += 1
        self.items[method] += size
        self.recent[method].append(size)
        metrics.batch_size().observe(size, tags={"method": method})
        metrics.model_calls().inc(tags={"method": method})
        metrics.batch_items().inc(size, tags={"method": method})

    @contextmanager
    def model_call(self, method: str, size: int) -> Iterator[None]:
        """Records one batched model call and how long the model was busy with it."""
        self.record(method, size)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.busy(method, time.perf_counter() - started)

    def busy(self, method: str, seconds: float) -> None:
        """Adds time the model spent on `method`."""
        self.seconds[method] += seconds
        metrics.add(metrics.model_seconds(), seconds, {"method": method})

    def snapshot(self) -> dict[str, Any]:
        """{"pid", "python": the replica's interpreter, "methods": {method: {model_calls,
        items, model_seconds, recent_batches}}, "events": {name: count}}

        Events: "deadline_dropped" and "cancelled" (work dropped before the model, or a text
        row ended mid-decode because its caller left), "deadline_aborted" (a text row whose
        deadline passed mid-decode), "batch_failed" (a batch that failed whole and was rerun
        row by row), "stream_aborted" (a stream that ended before its completion), "slo_rejected"
        (turned away on arrival: predicted past its objective under slo.scheduling "slo") and
        "slo_predicted_miss" (text under "fifo": a request "slo" would have turned away)."""
        methods = {m: {"model_calls": self.calls[m], "items": self.items[m],
                       "model_seconds": round(self.seconds[m], 6),
                       "recent_batches": list(self.recent[m])} for m in self.calls}
        return {"pid": os.getpid(), "python": sys.executable, "methods": methods,
                "events": dict(self.events)}
