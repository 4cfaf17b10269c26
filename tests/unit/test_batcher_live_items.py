"""The batcher's batches hold live items only, and an interrupted batch still answers every
caller: dropped items leave their slots to the items queued behind them, and a BaseException
from the model call settles each caller's future before it goes on up."""

from __future__ import annotations

import asyncio
import time

import pytest

from deployments.core.errors import DeadlineExceeded, InternalFailure
from deployments.replicas.batcher import DynamicBatcher

SETTLE_S = 5.0  # a caller left unsettled would wait forever: fail the test instead


class HeldModel:
    """Doubles its inputs, recording each batch. Its first batch runs until `release` is set,
    so the items sent meanwhile queue; `interrupt` is raised by the batch holding it."""

    def __init__(self, interrupt: BaseException | None = None, fails_on: int = -1) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.interrupt, self.fails_on = interrupt, fails_on

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()
        if self.fails_on in items:
            raise (self.interrupt if len(items) == 1 else ValueError("a batch failed"))
        return [2 * item for item in items]


async def started(model: HeldModel, max_batch_size: int, events: list[str] | None = None):
    """A batcher whose model is running a first batch (item 0) until `model.release` is set."""
    batcher = DynamicBatcher(model, max_batch_size=max_batch_size, batch_wait_timeout_s=0.0,
                             on_event=(events if events is not None else []).append)
    first = asyncio.ensure_future(batcher(0))
    while not model.batches:
        await asyncio.sleep(0)
    return batcher, first


def test_expired_and_cancelled_items_leave_their_slots_to_live_ones():
    async def scenario():
        model, events = HeldModel(), []
        batcher, first = await started(model, max_batch_size=2, events=events)
        expired = asyncio.ensure_future(batcher(1, deadline=time.time() - 1))
        live = [asyncio.ensure_future(batcher(3))]
        gone = asyncio.ensure_future(batcher(2))
        live.append(asyncio.ensure_future(batcher(4)))
        await asyncio.sleep(0)  # every call has queued its item
        gone.cancel()
        model.release.set()
        outcomes = await asyncio.wait_for(
            asyncio.gather(first, expired, gone, *live, return_exceptions=True), SETTLE_S)
        return model.batches, outcomes, events

    batches, (first, expired, gone, *live), events = asyncio.run(scenario())
    assert batches == [[0], [3, 4]]  # the two live items fill the batch of two together
    assert first == 0 and live == [6, 8]
    assert isinstance(expired, DeadlineExceeded)
    assert isinstance(gone, asyncio.CancelledError)
    assert sorted(events) == ["cancelled", "deadline_dropped"]


def test_a_cancelled_model_call_fails_its_callers_and_the_batcher_goes_on():
    async def scenario():
        model = HeldModel(interrupt=asyncio.CancelledError(), fails_on=0)
        batcher, first = await started(model, max_batch_size=4)
        queued = asyncio.ensure_future(batcher(5))
        await asyncio.sleep(0)
        model.release.set()
        outcomes = await asyncio.wait_for(
            asyncio.gather(first, queued, return_exceptions=True), SETTLE_S)
        return outcomes, await asyncio.wait_for(batcher(6), SETTLE_S)

    (interrupted, queued), after = asyncio.run(scenario())
    assert isinstance(interrupted, InternalFailure)
    assert isinstance(interrupted.__cause__, asyncio.CancelledError)
    assert (queued, after) == (10, 12)


class Interrupt(BaseException):
    """Neither an Exception nor a cancellation: it must go on up, as KeyboardInterrupt does."""


def test_a_base_exception_from_a_rerun_row_settles_the_whole_batch_then_goes_up():
    async def scenario():
        model = HeldModel(interrupt=Interrupt(), fails_on=7)
        batcher, first = await started(model, max_batch_size=4)
        rows = [asyncio.ensure_future(batcher(i)) for i in (7, 8)]
        queued_behind = asyncio.ensure_future(batcher(9))
        await asyncio.sleep(0)
        batcher.set_max_batch_size(2)  # 7 and 8 form a batch; 9 waits behind it
        model.release.set()
        outcomes = await asyncio.wait_for(
            asyncio.gather(first, *rows, queued_behind, return_exceptions=True), SETTLE_S)
        with pytest.raises(Interrupt):
            await batcher._worker
        return model.batches, outcomes

    batches, (first, seven, eight, nine) = asyncio.run(scenario())
    assert batches == [[0], [7, 8], [7]]  # failed whole, then 7 alone raised the interrupt
    assert first == 0
    assert all(isinstance(outcome, InternalFailure) for outcome in (seven, eight, nine))
