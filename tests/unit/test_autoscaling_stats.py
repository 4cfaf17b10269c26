"""What a replica reports to Serve's autoscaling for the capacity policy: the service rate of
its batchers' mix of work (deployments/replicas/autoscaling_stats.py), and the replica's
`record_autoscaling_stats` over its own batchers."""

from __future__ import annotations

import asyncio

import pytest

from deployments.core.config import DeploymentSettings
from deployments.replicas.autoscaling_stats import autoscaling_stats, mixed_service_rate
from deployments.replicas.batcher import DynamicBatcher, Forecast
from deployments.replicas.capacity_policy import SERVICE_RATE_METRIC
from deployments.replicas.latency_model import LatencyModel
from deployments.replicas.replica_base import BatchedReplica


def test_one_batcher_reports_its_own_rate():
    assert mixed_service_rate([Forecast(queued=3, service_rate=8.0, drain_s=0.5)]) == 8.0


def test_batchers_sharing_the_model_thread_do_not_add_up_their_rates():
    images, texts = Forecast(6, 4.0, 1.5), Forecast(2, 40.0, 0.05)
    # 6 images take 1.5 s and 2 texts 0.05 s: 8 items in 1.55 s
    assert mixed_service_rate([images, texts]) == pytest.approx(8 / 1.55)
    idle = [Forecast(0, 4.0, 0.0), Forecast(0, 40.0, 0.0)]
    assert mixed_service_rate(idle) == pytest.approx(2 / (1 / 4 + 1 / 40))  # an even mix


def test_a_batcher_without_a_rate_is_left_out_and_none_known_reports_nothing():
    unknown, instant = Forecast(5, None, None), Forecast(5, float("inf"), 0.0)
    assert mixed_service_rate([unknown, Forecast(1, 2.0, 0.5), instant]) == 2.0
    assert autoscaling_stats([unknown, instant]) == {}
    assert autoscaling_stats([Forecast(0, 2.0, 0.0)]) == {SERVICE_RATE_METRIC: 2.0}


class _SchedulerSetters:
    """What the transformers text engine puts among a replica's batchers: setters only."""

    def set_max_batch_size(self, size: int) -> None: ...


async def _noop(items: list) -> list:
    return items


def _taught(size: int, seconds: float) -> LatencyModel:
    model = LatencyModel()
    model.observe(size, seconds)
    return model


def test_the_replica_reports_the_rate_its_batchers_have_learned():
    replica = BatchedReplica(DeploymentSettings())
    replica.batchers = [DynamicBatcher(_noop, max_batch_size=4, latency_model=_taught(4, 0.5)),
                        DynamicBatcher(_noop, max_batch_size=4, latency_model=LatencyModel()),
                        _SchedulerSetters()]
    assert asyncio.run(replica.record_autoscaling_stats()) == {SERVICE_RATE_METRIC: 8.0}
    replica.batchers = [_SchedulerSetters()]
    assert asyncio.run(replica.record_autoscaling_stats()) == {}
