"""The app's metric helpers."""

from __future__ import annotations

from deployments.replicas.metrics import add


def test_metrics_add_skips_a_zero_that_ray_counters_refuse():
    class Counter:
        def __init__(self):
            self.amounts = []

        def inc(self, amount, tags):
            if amount <= 0:  # what ray.util.metrics.Counter does
                raise ValueError(f"value must be >0, got {amount}")
            self.amounts.append(amount)

    counter = Counter()
    for amount in (0, 3, 0.0, 0.5):
        add(counter, amount, {"kind": "completion"})
    assert counter.amounts == [3, 0.5]
