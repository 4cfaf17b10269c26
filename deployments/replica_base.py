"""What every model deployment shares: readiness, batch statistics, live batching changes."""

from __future__ import annotations

from typing import Any

from deployments.batch_stats import BatchStats
from serve_app.config import Batching


class BatchedReplica:
    """Mixin for deployments whose model calls go through `@serve.batch` methods.

    Batching settings arrive through Serve's user_config, so `serve deploy` with new values
    calls `reconfigure` on the running replicas instead of restarting them.
    """

    batched_methods: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.stats = BatchStats()

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
