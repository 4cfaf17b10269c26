"""Health checks that see a stuck replica: a model thread held by one call past
model_call_timeout_s fails the check. tests/integration/test_health_replacement.py wedges a
real replica and watches Serve replace it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from deployments.core.config import DeploymentSettings
from deployments.replicas.replica_base import BatchedReplica, ModelThread


def test_the_model_thread_knows_how_long_its_call_has_run():
    thread, release = ModelThread(), threading.Event()
    assert thread.busy_for() == 0.0
    running = thread.submit(release.wait)
    _wait_for(lambda: thread.busy_for() > 0.05, 10)
    release.set()
    running.result()
    assert thread.busy_for() == 0.0
    thread.shutdown()


def test_check_health_fails_while_one_model_call_outlasts_its_limit():
    replica, release = BatchedReplica(DeploymentSettings(model_call_timeout_s=0.1)), \
        threading.Event()
    asyncio.run(replica.check_health())  # idle: healthy
    stuck = replica._model_thread.submit(release.wait)
    _wait_for(lambda: replica._model_thread.busy_for() > 0.1, 10)
    with pytest.raises(RuntimeError, match="model thread has been in one call"):
        asyncio.run(replica.check_health())
    release.set()
    stuck.result()
    asyncio.run(replica.check_health())  # free again: healthy


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.5)
