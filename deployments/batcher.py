"""A dynamic batcher that forms each batch when the model is free, the way Triton's does.

`@serve.batch` (Ray 2.60) closes the next batch on its own timer while the current one is still
running, so under steady load a replica runs fragments of batches one after another. Here a batch
is formed only once the previous one has finished: it takes what queued meanwhile, up to
`max_batch_size`, at once if the oldest request has already waited `batch_wait_timeout_s`,
otherwise after waiting out the rest of that window for more. One batch runs at a time, which
is what a model that uses every core it was given wants.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T]):
    item: T
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class DynamicBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[T]], Awaitable[list[R]]],
                 max_batch_size: int = 16, batch_wait_timeout_s: float = 0.02) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self._queue: deque[_Waiting[T]] = deque()
        self._arrival = asyncio.Event()
        self._worker: asyncio.Task | None = None

    # The setters `@serve.batch` methods have, so BatchedReplica.reconfigure drives both.
    def set_max_batch_size(self, size: int) -> None:
        self.max_batch_size = size

    def set_batch_wait_timeout_s(self, seconds: float) -> None:
        self.batch_wait_timeout_s = seconds

    async def __call__(self, item: T) -> R:
        """Queues one item and returns its result once its batch has run."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(item, future))
        self._arrival.set()
        return await future

    async def _run_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run(batch)

    async def _next_batch(self) -> list[_Waiting[T]]:
        while not self._queue:
            self._arrival.clear()
            await self._arrival.wait()
        deadline = self._queue[0].arrived + self.batch_wait_timeout_s
        while len(self._queue) < self.max_batch_size and (left := deadline - time.monotonic()) > 0:
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), left)
            except TimeoutError:
                break
        taken = [self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))]
        return [waiting for waiting in taken if not waiting.future.done()]  # done: cancelled

    async def _run(self, batch: list[_Waiting[T]]) -> None:
        try:
            results = await self.run_batch([waiting.item for waiting in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
        except Exception as error:  # every caller of the batch gets the error, none hangs
            for waiting in batch:
                _settle(waiting.future, error=error)
            return
        for waiting, result in zip(batch, results):
            _settle(waiting.future, result=result)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
