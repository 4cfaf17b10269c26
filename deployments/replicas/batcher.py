"""A dynamic batcher that forms each batch when the model is free, the way Triton's does.

`@serve.batch` (Ray 2.60) closes the next batch on its own timer while the current one is still
running, so under steady load a replica runs fragments of batches one after another. Here a batch
is formed only once the previous one has finished: it takes what queued meanwhile, up to
`max_batch_size`, at once if the oldest request has already waited `batch_wait_timeout_s`,
otherwise after waiting out the rest of that window for more. One batch runs at a time, which
is what a model that uses every core it was given wants.

Each caller gets its own outcome. `run_batch` returns one result per item, and a result may be
an Exception instance: that caller gets the exception, the others their results. When
`run_batch` raises for the whole batch, each of its items is run again alone, so a row that
breaks the engine fails only its own caller. A BaseException from `run_batch` (a cancellation,
an interrupt) fails every caller of the batch with InternalFailure; a cancellation of the call
alone leaves the batcher running, anything else ends its worker, whose queued callers fail too.
An item whose caller went away (cancelled) or whose deadline passed while it queued is dropped
as the batch forms: its work is never computed and its slot goes to a live item.

Each item's waits are recorded on the request's timeline (deployments/core/timing.py) and told
to `on_wait`: "queue" (the model was busy), "batch" (the batch window, the model free) and
"model" (the call its batch rode in).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from deployments.core import timing
from deployments.core.deadline import expired
from deployments.core.errors import DeadlineExceeded, InternalFailure

T = TypeVar("T")
R = TypeVar("R")
Waits = dict[str, tuple[float, float]]  # {stage: (monotonic start, seconds)}


@dataclass
class _Waiting(Generic[T]):
    item: T
    future: asyncio.Future
    deadline: float | None = None
    arrived: float = field(default_factory=time.monotonic)
    # When the model was free for it, when its batch closed, and its batch's model call.
    formed: float = 0.0
    closed: float = 0.0
    ran: tuple[float, float] = (0.0, 0.0)

    def waits(self) -> Waits:
        return {"queue": (self.arrived, self.formed - self.arrived),
                "batch": (self.formed, self.closed - self.formed),
                "model": (self.ran[0], self.ran[1] - self.ran[0])}


class DynamicBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
                 max_batch_size: int = 16, batch_wait_timeout_s: float = 0.02,
                 on_event: Callable[[str], None] | None = None,
                 on_wait: Callable[[Waits], None] | None = None,
                 on_queue_length: Callable[[int], None] | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        # Told "deadline_dropped" and "cancelled" per item dropped before its batch, and
        # "batch_failed" per batch that failed whole (its rows were then rerun alone).
        self.on_event = on_event or (lambda _event: None)
        self.on_wait = on_wait or (lambda _waits: None)
        self.on_queue_length = on_queue_length or (lambda _length: None)
        self._queue: deque[_Waiting[T]] = deque()
        self._arrival = asyncio.Event()
        self._worker: asyncio.Task | None = None

    # The setters `@serve.batch` methods have, so BatchedReplica.reconfigure drives both.
    def set_max_batch_size(self, size: int) -> None:
        self.max_batch_size = size

    def set_batch_wait_timeout_s(self, seconds: float) -> None:
        self.batch_wait_timeout_s = seconds

    async def __call__(self, item: T, deadline: float | None = None) -> R:
        """Queues one item and returns its result once its batch has run.

        `deadline` is absolute wall-clock time (deployments/core/deadline.py); once it has passed,
        the item is not put in a batch and this raises DeadlineExceeded.
        """
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())
        future = asyncio.get_running_loop().create_future()
        waiting = _Waiting(item, future, deadline)
        self._queue.append(waiting)
        self.on_queue_length(len(self._queue))
        self._arrival.set()
        result = await future  # cancelling the caller cancels the future: the item is dropped
        waits = waiting.waits()
        for stage, (start, seconds) in waits.items():
            timing.record(stage, timing.epoch(start), seconds)
        self.on_wait(waits)
        return result

    async def _run_forever(self) -> None:
        try:
            while True:
                batch = await self._next_batch()
                if batch:
                    await self._run_interruptible(batch)
        finally:  # this worker is ending: the items it would have run get an answer
            _settle_all(self._queue)
            self._queue.clear()
            self.on_queue_length(0)

    async def _run_interruptible(self, batch: list[_Waiting[T]]) -> None:
        """Runs `batch`; a cancellation of a call inside it (not of this worker) fails the
        batch's callers, and the next batch runs as usual."""
        try:
            await self._run(batch)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise

    async def _next_batch(self) -> list[_Waiting[T]]:
        """The live items queued, oldest first, up to `max_batch_size`: an item whose caller
        left or whose deadline passed is dropped as it is met, so it never takes a slot."""
        while not self._drop_unwanted():
            self._arrival.clear()
            await self._arrival.wait()
        free_at = time.monotonic()
        closes_at = self._queue[0].arrived + self.batch_wait_timeout_s
        while (self._drop_unwanted() < self.max_batch_size
               and (left := closes_at - time.monotonic()) > 0):
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), left)
            except TimeoutError:
                break
        self._drop_unwanted()
        taken = [self._queue.popleft() for _ in range(min(self.max_batch_size, len(self._queue)))]
        self.on_queue_length(len(self._queue))
        closed = time.monotonic()
        for waiting in taken:
            waiting.formed, waiting.closed = max(waiting.arrived, free_at), closed
        return taken

    def _drop_unwanted(self) -> int:
        """Settles and removes the queued items no longer wanted; the number left."""
        wanted = [waiting for waiting in self._queue if self._still_wanted(waiting)]
        if len(wanted) < len(self._queue):
            self._queue = deque(wanted)
            self.on_queue_length(len(self._queue))
        return len(self._queue)

    def _still_wanted(self, waiting: _Waiting[T]) -> bool:
        """False, after settling it, for an item whose deadline passed or whose caller left.

        The deadline comes first: a caller that gave up at its deadline (the ingress cancels
        its call then) is counted as a deadline drop, not as a client that went away."""
        if expired(waiting.deadline):
            _settle(waiting.future, error=DeadlineExceeded())
            self.on_event("deadline_dropped")
            return False
        if waiting.future.done():  # cancelled: its caller went away
            self.on_event("cancelled")
            return False
        return True

    async def _run(self, batch: list[_Waiting[T]]) -> None:
        """Runs `batch` and settles each caller's future, with its result or error; a
        BaseException (a cancellation, an interrupt) settles every one still open with
        InternalFailure before it goes on up."""
        try:
            await self._run_settling(batch)
        except BaseException as error:
            _settle_all(batch, error)
            raise

    async def _run_settling(self, batch: list[_Waiting[T]]) -> None:
        started = time.monotonic()
        try:
            results = await self.run_batch([waiting.item for waiting in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
        except Exception as error:
            if len(batch) == 1:  # alone, the item is the cause: only its caller fails
                _settle(batch[0].future, error=error)
                return
            self.on_event("batch_failed")
            for waiting in batch:  # each alone, so only the row that breaks the engine fails
                if self._still_wanted(waiting):
                    await self._run_settling([waiting])
            return
        ran = (started, time.monotonic())
        for waiting, result in zip(batch, results):
            waiting.ran = ran
            if isinstance(result, Exception):
                _settle(waiting.future, error=result)
            else:
                _settle(waiting.future, result=result)


async def all_or_none(awaitables: Iterable[Awaitable[R]]) -> list[R]:
    """The results of awaitables run together; when one fails (or the caller is cancelled) the
    others are cancelled, so a request's remaining items leave the batcher's queue."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()  # a no-op for those already done


async def run_valid_rows(
    items: list[T], check: Callable[[T], None],
    run: Callable[[list[T]], Awaitable[Sequence[R]]],
) -> list[R | Exception]:
    """`run` on the items `check` accepts; each item it rejects gets the error it raised,
    so one bad row of a batch fails alone before the model sees the batch."""
    results: list[Any] = [None] * len(items)
    valid: list[int] = []
    for index, item in enumerate(items):
        try:
            check(item)
        except Exception as error:
            results[index] = error
        else:
            valid.append(index)
    if valid:
        for index, result in zip(valid, await run([items[i] for i in valid]), strict=True):
            results[index] = result
    return results


def _interrupted(cause: BaseException | None = None) -> InternalFailure:
    error = InternalFailure("the model call was interrupted before it finished")
    error.__cause__ = cause
    return error


def _settle_all(items: Iterable[_Waiting[Any]], cause: BaseException | None = None) -> None:
    """Fails every caller of `items` still waiting, each with its own InternalFailure."""
    for waiting in items:
        _settle(waiting.future, error=_interrupted(cause))


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
