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

The serving order is the class first (interactive before batch), then the weighted fair share
among the tenants of a class, then the policy within a tenant (deployments/core/fair_share.py);
with one tenant in one class, the policy alone. The policy chooses the order within a tenant and
the size of batches. "fifo" is the above: oldest first, full batches, a window. "slo" serves the
earliest objective first (EDF). An item's `objective` is the absolute epoch time its route's SLO
wants it done by; items without one come after those with one, oldest first. Every choice is
priced by an online latency model
(replicas/latency_model.py) that learns from each batch run, under either policy:
- admission: an item whose predicted finish (what is left of the running batch, then full
  batches of the live items ahead of it in serving order and itself) is past its objective is
  turned away at once with SloUnreachable, the queue untouched. Full batches are the best case
  the queue can drain at, so an item is rejected only when even that misses. No batch item is
  ahead of an interactive one, every interactive item is ahead of a batch one: under overload
  batch is turned away first;
- batch size: when the model is free, the largest batch, in serving order, that is predicted
  to finish by the earliest objective in it; items that cannot meet their objective even alone
  wait behind their tenant's items that still can (their deadline still drops them), and when
  none can, they go at the largest batch. There is no batch window: waiting would only spend
  slack.
An item that would start at once (no model call running, no live item ahead of it) is always
admitted: turning it away frees nothing for anyone, and its call is what teaches the model
again after a slow one. While the latency model has seen no batch, both fall back: every item
is admitted, every batch is the largest. The model does not learn from the first `cold_calls`
calls: a first call pays one-off costs (a model built at first use, TorchScript's profiling
runs) that say nothing of the next one, and learnt as one it would price every call after.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from deployments.core import timing
from deployments.core.errors import DeadlineExceeded, InternalFailure, Overloaded, SloUnreachable
from deployments.core.fair_share import ANONYMOUS, FairShares, Share
from deployments.replicas.latency_model import LatencyModel

T = TypeVar("T")
R = TypeVar("R")
Waits = dict[str, tuple[float, float]]  # {stage: (monotonic start, seconds)}
Policy = Literal["fifo", "slo"]


@dataclass(eq=False)
class _Waiting(Generic[T]):
    item: T
    future: asyncio.Future
    arrived: float
    deadline: float | None = None
    objective: float | None = None
    share: Share = ANONYMOUS
    # When the model was free for it, when its batch closed, and its batch's model call.
    formed: float = 0.0
    closed: float = 0.0
    ran: tuple[float, float] = (0.0, 0.0)

    def waits(self) -> Waits:
        return {"queue": (self.arrived, self.formed - self.arrived),
                "batch": (self.formed, self.closed - self.formed),
                "model": (self.ran[0], self.ran[1] - self.ran[0])}


def _share_of(waiting: _Waiting[Any]) -> Share:
    return waiting.share


def _edf_key(hopeful_by: float | None) -> Callable[[_Waiting[Any]], tuple[int, float]]:
    """Earliest objective first: those that can still end by it (objective at or after
    `hopeful_by`; None: all), then those that cannot, then those without one. Sorting is
    stable: equal keys keep arrival order."""
    def key(waiting: _Waiting[Any]) -> tuple[int, float]:
        if waiting.objective is None:
            return (2, 0.0)
        if hopeful_by is not None and waiting.objective < hopeful_by:
            return (1, waiting.objective)
        return (0, waiting.objective)
    return key


@dataclass(frozen=True)
class Forecast:
    """What the allocator and the ingress read of one batcher: the live items queued, the items
    per second it is predicted to serve at full batches, and the seconds until the running
    batch and the queue are predicted done. None where the latency model has seen no batch."""

    queued: int
    service_rate: float | None
    drain_s: float | None


class DynamicBatcher(Generic[T, R]):
    def __init__(self, run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
                 max_batch_size: int = 16, batch_wait_timeout_s: float = 0.02,
                 on_event: Callable[[str], None] | None = None,
                 on_wait: Callable[[Waits], None] | None = None,
                 on_queue_length: Callable[[int], None] | None = None,
                 policy: Policy = "fifo", latency_model: LatencyModel | None = None,
                 cold_calls: int = 1, max_waiting: int | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 monotonic_clock: Callable[[], float] = time.monotonic) -> None:
        _check_policy(policy)
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.policy = policy
        self.max_waiting = max_waiting
        self.latency_model = latency_model if latency_model is not None else LatencyModel()
        self._cold_calls_left = cold_calls
        # Told "deadline_dropped" and "cancelled" per item dropped before its batch,
        # "batch_failed" per batch that failed whole (its rows were then rerun alone),
        # "slo_rejected" per item turned away on arrival, and "shed" per item turned away
        # because the queue was full.
        self.on_event = on_event or (lambda _event: None)
        self.on_wait = on_wait or (lambda _waits: None)
        self.on_queue_length = on_queue_length or (lambda _length: None)
        # Epoch seconds for deadlines and objectives, monotonic seconds for waits and calls.
        self._wall_clock = wall_clock
        self._clock = monotonic_clock
        self._queue: deque[_Waiting[T]] = deque()  # in arrival order
        self.shares = FairShares()
        self._arrival = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._running: tuple[float, int] | None = None  # the model call's start and size

    # The setters `@serve.batch` methods have, so BatchedReplica.reconfigure drives both.
    def set_max_batch_size(self, size: int) -> None:
        self.max_batch_size = size

    def set_batch_wait_timeout_s(self, seconds: float) -> None:
        self.batch_wait_timeout_s = seconds

    def set_max_waiting(self, items: int | None) -> None:
        """The most items waiting for the model (None: no limit); a queue already longer
        sheds on its next arrivals."""
        self.max_waiting = items

    def set_policy(self, policy: Policy) -> None:
        """Switches policy live; the next batch is taken in the new policy's order."""
        _check_policy(policy)
        self.policy = policy

    async def __call__(self, item: T, deadline: float | None = None,
                       objective: float | None = None, share: Share = ANONYMOUS) -> R:
        """Queues one item and returns its result once its batch has run.

        `deadline` is absolute wall-clock time (deployments/core/deadline.py); once it has passed,
        the item is not put in a batch and this raises DeadlineExceeded. `objective`, absolute
        wall-clock time too, is when it should be done; the "slo" policy orders by it and
        raises SloUnreachable at once when it is predicted to be missed ("fifo" ignores it).
        `share` is its class and tenant, which come before the policy's order.
        """
        future = asyncio.get_running_loop().create_future()
        waiting = _Waiting(item, future, self._clock(), deadline, objective, share)
        if self.policy == "slo" and objective is not None:
            self._admit(waiting)
        self._make_room(waiting)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())
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
        """The next batch of live items, as the policy chooses them: an item whose caller left
        or whose deadline passed is dropped as it is met, so it never takes a slot."""
        while not self._drop_unwanted():
            self._arrival.clear()
            await self._arrival.wait()
        free_at = self._clock()
        taken = self._take_by_objective() if self.policy == "slo" else await self._take_oldest()
        self.on_queue_length(len(self._queue))
        closed = self._clock()
        for waiting in taken:
            waiting.formed, waiting.closed = max(waiting.arrived, free_at), closed
        return taken

    async def _take_oldest(self) -> list[_Waiting[T]]:
        """The oldest items, up to `max_batch_size`, once the batch is full or the oldest has
        waited `batch_wait_timeout_s`."""
        closes_at = self._queue[0].arrived + self.batch_wait_timeout_s
        while (self._drop_unwanted() < self.max_batch_size
               and (left := closes_at - self._clock()) > 0):
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), left)
            except TimeoutError:
                break
        self._drop_unwanted()
        return self._take(self._serving_order(self._queue, None)[:self.max_batch_size])

    def _take_by_objective(self) -> list[_Waiting[T]]:
        """The largest batch, in serving order, predicted to finish by its earliest objective."""
        now = self._wall_clock()
        alone = self.latency_model.latency(1)
        order = self._serving_order(self._queue, None if alone is None else now + alone)
        return self._take(order[:self._slo_batch_size(order, now)])

    def _take(self, batch: list[_Waiting[T]]) -> list[_Waiting[T]]:
        """Takes `batch` out of the queue, each item's tenant served its share."""
        if len(batch) == len(self._queue):
            self._queue.clear()
        else:
            chosen = {id(waiting) for waiting in batch}
            self._queue = deque(waiting for waiting in self._queue if id(waiting) not in chosen)
        for waiting in batch:
            self.shares.serve(waiting.share)
        return batch

    def _serving_order(self, items: Iterable[_Waiting[T]],
                       hopeful_by: float | None) -> list[_Waiting[T]]:
        """`items` (in arrival order) as they are served: class, fair share among a class's
        tenants, then the policy within a tenant; under "slo", a tenant's items that cannot
        end by their objective even when started now (before `hopeful_by`) go behind those that
        still can, ahead of those without an objective."""
        key = _edf_key(hopeful_by) if self.policy == "slo" else None
        return self.shares.order(items, _share_of, key)

    def _slo_batch_size(self, order: list[_Waiting[T]], now: float) -> int:
        """The largest n whose batch of the first n items of `order` is predicted to end by
        the earliest objective among them; the largest batch when none can (or no prediction)."""
        largest = min(self.max_batch_size, len(order))
        if not self.latency_model.can_predict:
            return largest
        earliest, fits = math.inf, 0
        for size in range(1, largest + 1):
            if order[size - 1].objective is not None:
                earliest = min(earliest, order[size - 1].objective)
            if now + self.latency_model.latency(size) > earliest:
                break
            fits = size
        return fits or largest

    def _admit(self, candidate: _Waiting[T]) -> None:
        """Raises SloUnreachable, the queue left as it was, when `candidate` is predicted to
        finish past its objective: what is left of the running batch, then full batches of the
        live items ahead of it in serving order and it."""
        model = self.latency_model
        if not model.can_predict:
            return
        now, running_left = self._wall_clock(), self._running_left()
        starts_by = now + running_left + model.latency(1)  # the earliest any queued item ends
        ahead = 0
        for waiting in self._serving_order([*self._queue, candidate], starts_by):
            if waiting is candidate:
                break
            ahead += self._live(waiting, now)
        if ahead == 0 and self._running is None:
            return  # it starts at once
        wait = running_left + self._drain_seconds(ahead + 1)
        budget = candidate.objective - now
        if wait <= budget:
            return
        self.on_event("slo_rejected")
        # A request of this kind arriving later makes it once the queue ahead of it has drained
        # for as long as this one would overshoot.
        raise SloUnreachable(wait, budget, retry_after_s=max(1.0, wait - budget))

    def _make_room(self, candidate: _Waiting[T]) -> None:
        """With `max_waiting` live items queued, turns away the one served last among them and
        `candidate` (Overloaded): batch before interactive, then the newest item of the tenant
        furthest past its fair share. A flood is shed first, and the items of a tenant within
        its share keep their places; with one tenant in one class, the newcomer is turned
        away (fifo) or the latest objective (slo)."""
        if self.max_waiting is None or self._drop_unwanted() < self.max_waiting:
            return
        hopeful_by = self._wall_clock() if self.policy == "slo" else None
        last = self._serving_order([*self._queue, candidate], hopeful_by)[-1]
        self.on_event("shed")
        error = Overloaded("this replica's queue is full; retry later",
                           retry_after_s=self._shed_retry_after_s())
        if last is candidate:
            raise error
        self._queue.remove(last)
        _settle(last.future, error=error)
        self.on_queue_length(len(self._queue))

    def _shed_retry_after_s(self) -> float:
        """When the queue is predicted to have room again: what is left of the running batch
        and one full batch (at least 1 s; 1 s while the latency model has seen no batch)."""
        if not self.latency_model.can_predict:
            return 1.0
        return max(1.0, self._running_left() + self._drain_seconds(self.max_batch_size))

    def forecast(self) -> Forecast:
        """The queue's load as the latency model predicts it (see Forecast)."""
        now = self._wall_clock()
        queued = sum(1 for waiting in self._queue if self._live(waiting, now))
        rate = self.latency_model.service_rate(self.max_batch_size)
        if rate is None:
            return Forecast(queued, None, None)
        return Forecast(queued, rate, self._running_left() + self._drain_seconds(queued))

    def _running_left(self) -> float:
        """Seconds the running model call is predicted to have left; 0 when none runs."""
        if self._running is None:
            return 0.0
        started, size = self._running
        return max(0.0, started + self.latency_model.latency(size) - self._clock())

    def _drain_seconds(self, items: int) -> float:
        """Predicted seconds to run `items` items in full batches."""
        full, rest = divmod(items, self.max_batch_size)
        seconds = full * self.latency_model.latency(self.max_batch_size) if full else 0.0
        return seconds + (self.latency_model.latency(rest) if rest else 0.0)

    def _live(self, waiting: _Waiting[T], now: float) -> bool:
        return not waiting.future.done() and not _past(waiting.deadline, now)

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
        if _past(waiting.deadline, self._wall_clock()):
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
        try:
            results, ran = await self._call_model(batch)
        except Exception as error:
            if len(batch) == 1:  # alone, the item is the cause: only its caller fails
                _settle(batch[0].future, error=error)
                return
            self.on_event("batch_failed")
            for waiting in batch:  # each alone, so only the row that breaks the engine fails
                if self._still_wanted(waiting):
                    await self._run_settling([waiting])
            return
        for waiting, result in zip(batch, results):
            waiting.ran = ran
            if isinstance(result, Exception):
                _settle(waiting.future, error=result)
            else:
                _settle(waiting.future, result=result)


    async def _call_model(
        self, batch: list[_Waiting[T]],
    ) -> tuple[Sequence[R | Exception], tuple[float, float]]:
        """`run_batch` on the batch's items, and when it ran (monotonic start, end); a call
        past the cold ones that answers for every item teaches the latency model its size and
        seconds."""
        started = self._clock()
        self._running = (started, len(batch))
        try:
            results = await self.run_batch([waiting.item for waiting in batch])
        finally:
            self._running = None
        ended = self._clock()
        if len(results) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} returned {len(results)} results")
        if self._cold_calls_left > 0:
            self._cold_calls_left -= 1
        else:
            self.latency_model.observe(len(batch), ended - started)
        return results, (started, ended)


def _check_policy(policy: str) -> None:
    if policy not in ("fifo", "slo"):
        raise ValueError(f"policy must be 'fifo' or 'slo', not {policy!r}")


def _past(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline


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
