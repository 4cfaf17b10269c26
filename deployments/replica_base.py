"""What every model deployment shares: readiness, batch statistics, live batching changes,
and the one thread its model runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from deployments.batch_stats import BatchStats
from serve_app.config import Batching

R = TypeVar("R")


class BatchedReplica:
    """Mixin for deployments whose model calls go through `@serve.batch` methods or
    DynamicBatchers (deployments/batcher.py), named in `batched_methods`.

    Batching settings arrive through Serve's user_config, so `serve deploy` with new values
    calls `reconfigure` on the running replicas instead of restarting them.
    """

    batched_methods: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.stats = BatchStats()
        # One thread for every model call: batches never time-slice one core between them,
        # and the allocator's arena and the caches stay warm (asyncio.to_thread hops threads).
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def run_model(self, function: Callable[..., R], *args: Any) -> R:
        """`function(*args)` on the model thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._model_thread, function, *args)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        batching = Batching.model_validate(user_config)
        for name in self.batched_methods:
            method = getattr(self, name)
            method.set_max_batch_size(batching.max_batch_size)
            method.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)

    async def ready(self) -> bool:
        return True

    def batch_stats(self) -> dict[str, Any]:
        return self.stats.snapshot()
