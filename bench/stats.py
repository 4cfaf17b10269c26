"""Summary statistics of a sample: mean, std and p50/p90/p95/p99, as vLLM's bench reports them.

Percentiles interpolate linearly between order statistics (numpy's default, as vLLM uses);
std is the population standard deviation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def summarize(values: Iterable[float | None]) -> dict[str, float] | None:
    """{count, mean, std, min, max, p50, p90, p95, p99}, or None for an empty sample."""
    sample = np.asarray([v for v in values if v is not None], dtype=float)
    if sample.size == 0:
        return None
    summary = {"count": int(sample.size), "mean": float(sample.mean()),
               "std": float(sample.std()), "min": float(sample.min()),
               "max": float(sample.max())}
    for q, value in zip(PERCENTILES, np.percentile(sample, PERCENTILES)):
        summary[f"p{q}"] = float(value)
    return summary
