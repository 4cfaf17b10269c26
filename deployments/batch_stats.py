"""Counts what batching did inside one replica: model calls and their sizes."""

from __future__ import annotations

from collections import Counter as Tally

from serve_app import metrics


class BatchStats:
    def __init__(self) -> None:
        self.calls: Tally[str] = Tally()
        self.items: Tally[str] = Tally()
        self.largest: Tally[str] = Tally()

    def record(self, method: str, size: int) -> None:
        self.calls[method] += 1
        self.items[method] += size
        self.largest[method] = max(self.largest[method], size)
        metrics.batch_size().observe(size, tags={"method": method})
        metrics.model_calls().inc(tags={"method": method})

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {m: {"model_calls": self.calls[m], "items": self.items[m],
                    "largest_batch": self.largest[m]} for m in self.calls}
