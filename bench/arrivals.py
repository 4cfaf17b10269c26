"""When open-loop requests are sent: Poisson arrivals at a rate, or gamma-distributed gaps for
burstier traffic (as vLLM's `--burstiness`): shape k = burstiness, mean gap 1/rate. k = 1 is
Poisson; k < 1 is burstier; k > 1 is more regular."""

from __future__ import annotations

import random


def arrival_times(rate: float, rng: random.Random, burstiness: float = 1.0,
                  until_s: float | None = None, count: int | None = None,
                  count_after_s: float = 0.0) -> list[float]:
    """Send times in seconds from the start, until `until_s` or until `count` of them fall at
    or after `count_after_s` (the warm-up)."""
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    if until_s is None and count is None:
        raise ValueError("give until_s or count")
    times, now, counted = [], 0.0, 0
    scale = 1.0 / (rate * burstiness)
    while True:
        now += rng.gammavariate(burstiness, scale)
        if until_s is not None and now >= until_s:
            return times
        times.append(now)
        counted += now >= count_after_s
        if count is not None and counted >= count:
            return times


def split_round_robin(times: list[float], parts: int) -> list[list[float]]:
    return [times[i::parts] for i in range(parts)]
