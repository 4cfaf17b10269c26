"""What a replica reports to Serve's autoscaling (`record_autoscaling_stats`): its service
rate, the key the capacity policy reads (deployments/replicas/capacity_policy.py).

A replica's batchers share its one model thread, so their rates do not add up: while one
batcher runs a batch, the other waits. The replica's rate is that of its mix of work, the
items divided by the seconds they take, each batcher's items at its own rate:

    rate = sum(items_i) / sum(items_i / rate_i)

weighted by the items queued at each batcher now, or equally when none is queued (then the
slower kind of work weighs most, which errs towards more capacity). Rates are items per
second at full batches (Forecast.service_rate): a request of n inputs (embeddings of n images)
is n items, so for groups whose requests carry several inputs each, the rate overstates the
requests per second a replica finishes. Nothing is reported before any batcher has run a
batch (no rate is known) or for a batcher without a forecast (the text engines').
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from deployments.replicas.batcher import Forecast
from deployments.replicas.capacity_policy import SERVICE_RATE_METRIC


def mixed_service_rate(forecasts: Iterable[Forecast]) -> float | None:
    """Items per second of one replica over its batchers' forecasts; None when none knows its
    rate."""
    known = [f for f in forecasts
             if f.service_rate is not None and 0 < f.service_rate < math.inf]
    if not known:
        return None
    weights = [f.queued for f in known]
    if sum(weights) == 0:
        weights = [1] * len(known)
    seconds = sum(weight / f.service_rate for weight, f in zip(weights, known, strict=True))
    return sum(weights) / seconds


def autoscaling_stats(forecasts: Iterable[Forecast]) -> dict[str, float]:
    """The dict `record_autoscaling_stats` returns: the service rate where one is known,
    else nothing (Serve then keeps no point for the key, and the policy assumes a rate)."""
    rate = mixed_service_rate(forecasts)
    return {} if rate is None else {SERVICE_RATE_METRIC: rate}
