"""What every model deployment shares: readiness, batch statistics, live batching changes,
the one thread its model runs on, and a health check that sees that thread stuck."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from deployments.core.call_protocol import NO_CONTEXT, CallContext, ModelInfoReply, ReadyReply
from deployments.core.config import Batching, DeploymentSettings
from deployments.core.precision import Choice, as_fields
from deployments.replicas import metrics
from deployments.replicas.autoscaling_stats import autoscaling_stats
from deployments.replicas.batch_stats import BatchStats
from deployments.replicas.batcher import DynamicBatcher
from deployments.replicas.free_memory import give_back_free_memory
from deployments.replicas.serve_options import SCHEDULING
from deployments.replicas.timed_calls import reports_timing

R = TypeVar("R")


class ModelThread(ThreadPoolExecutor):
    """The one thread a replica's model runs on; it knows how long its current call has run,
    and gives freed memory back to the system whenever it runs out of work."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="model")
        self._call_started: float | None = None

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(self._timed, fn, *args, **kwargs)

    def _timed(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        self._call_started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self._call_started = None
            if self._work_queue.empty():
                give_back_free_memory()

    def busy_for(self) -> float:
        """Seconds the call running now has taken; 0 when the thread is idle."""
        started = self._call_started
        return 0.0 if started is None else time.monotonic() - started


class BatchedReplica:
    """The base of every model deployment: its settings, batch statistics, the one model
    thread, the DynamicBatchers its model calls go through (`batchers`, replicas/batcher.py),
    readiness and a health check.

    Batching settings arrive through Serve's user_config, so `serve deploy` with new values
    calls `reconfigure` on the running replicas instead of restarting them.
    """

    def __init__(self, settings: DeploymentSettings, metrics_enabled: bool = True) -> None:
        metrics.set_enabled(metrics_enabled)  # observability.metrics
        self.settings = settings
        self.stats = BatchStats()
        self.batchers: list[DynamicBatcher] = []
        # One thread for every model call: batches never time-slice one core between them,
        # and the allocator's arena and the caches stay warm (asyncio.to_thread hops threads).
        self._model_thread = ModelThread()
        self.choices: dict[str, Choice] = {}  # the engine's dtype choices, set by each replica

    async def run_model(self, function: Callable[..., R], *args: Any) -> R:
        """`function(*args)` on the model thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._model_thread, function, *args)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """The batching settings and the app's queue policy (serve_options.deployment_options)."""
        live = dict(user_config)
        policy = live.pop(SCHEDULING, "fifo")
        batching = Batching.model_validate(live)
        for batcher in self.batchers:
            batcher.set_max_batch_size(batching.max_batch_size)
            batcher.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
            if isinstance(batcher, DynamicBatcher):  # the text engines queue on their own
                batcher.set_max_waiting(batching.max_waiting_items)
            batcher.set_policy(policy)

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve asks every metrics_interval_s (of a group with an autoscaling_config), on the
        event loop the batchers run on: the replica's service rate over its batchers, for the
        capacity policy (replicas/autoscaling_stats.py). The transformers text engine's
        scheduler stands among the batchers for their setters only: it has no forecast."""
        return autoscaling_stats(batcher.forecast() for batcher in self.batchers
                                 if isinstance(batcher, DynamicBatcher))

    async def check_health(self) -> None:
        """Fails while the model thread is stuck in one call for over model_call_timeout_s.

        Serve (2.60) runs a user-defined check_health on the replica's user-code event loop,
        the one requests run on, so a blocked loop never answers it: the controller counts a
        failure per health_check_timeout_s and replaces the replica after three in a row.
        """
        busy = self._model_thread.busy_for()
        limit = self.settings.model_call_timeout_s
        if busy > limit:
            raise RuntimeError(f"the model thread has been in one call for {busy:.0f} s; "
                               f"model_call_timeout_s is {limit:g} s")

    @reports_timing
    async def ready(self, ctx: CallContext = NO_CONTEXT) -> ReadyReply:
        """Answers once the model has loaded (the ingress's readiness probe)."""
        return ReadyReply()

    @reports_timing
    async def model_info(self, ctx: CallContext = NO_CONTEXT) -> ModelInfoReply:
        """What the engine chose at start, for `/v1/models`: {"dtype": "bfloat16",
        "dtype_reason": "auto: the CPU has avx512_bf16"} (compute_type for Whisper)."""
        return ModelInfoReply(as_fields(self.choices))

    def batch_stats(self) -> dict[str, Any]:
        return self.stats.snapshot()
