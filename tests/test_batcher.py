"""The vision batcher: batches form when the model is free, within the size cap, and every
caller gets its own result, its batch's error, or nothing at all once it has gone away."""

from __future__ import annotations

import asyncio

import pytest

from deployments.batcher import DynamicBatcher


class SlowModel:
    """Doubles its inputs; each call takes `seconds` and is recorded."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list] = []

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        if self.fail_on in items:
            raise ValueError(f"cannot embed {self.fail_on}")
        return [2 * item for item in items]


def run(coroutine):
    return asyncio.run(coroutine)


def test_requests_arriving_together_share_one_batch():
    async def scenario():
        model = SlowModel()
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.05)
        results = await asyncio.gather(*(batcher(i) for i in range(5)))
        return model.batches, results

    batches, results = run(scenario())
    assert batches == [[0, 1, 2, 3, 4]]
    assert results == [0, 2, 4, 6, 8]


def test_requests_queued_while_the_model_is_busy_form_the_next_batch_whole():
    async def scenario():
        model = SlowModel(seconds=0.3)
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.01)
        first = asyncio.ensure_future(batcher(0))
        await asyncio.sleep(0.05)  # the first batch is running now
        later = []
        for i in range(1, 6):  # spread out: a timer-closed batch would split them
            later.append(asyncio.ensure_future(batcher(i)))
            await asyncio.sleep(0.03)
        await asyncio.gather(first, *later)
        return model.batches

    assert run(scenario()) == [[0], [1, 2, 3, 4, 5]]


def test_batches_never_exceed_the_cap_and_the_cap_changes_live():
    async def scenario():
        model = SlowModel(seconds=0.01)
        batcher = DynamicBatcher(model, max_batch_size=4, batch_wait_timeout_s=0.05)
        await asyncio.gather(*(batcher(i) for i in range(10)))
        batcher.set_max_batch_size(1)
        batcher.set_batch_wait_timeout_s(0.0)
        await asyncio.gather(*(batcher(i) for i in range(3)))
        return [len(b) for b in model.batches]

    assert run(scenario()) == [4, 4, 2, 1, 1, 1]


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_runs():
    async def scenario():
        model = SlowModel(fail_on=3)
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.05)
        failed = await asyncio.gather(*(batcher(i) for i in range(4)), return_exceptions=True)
        return failed, await batcher(10)

    failed, after = run(scenario())
    assert all(isinstance(r, ValueError) for r in failed)
    assert after == 20


def test_a_batch_returning_the_wrong_number_of_results_is_an_error():
    async def short(items: list) -> list:
        return items[:-1]

    async def scenario():
        batcher = DynamicBatcher(short, max_batch_size=8, batch_wait_timeout_s=0.05)
        return await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in run(scenario()))


def test_a_caller_that_went_away_is_left_out_of_its_batch():
    async def scenario():
        model = SlowModel(seconds=0.2)
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.01)
        running = asyncio.ensure_future(batcher(0))
        await asyncio.sleep(0.05)
        gone, stays = asyncio.ensure_future(batcher(1)), asyncio.ensure_future(batcher(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return model.batches, await running, await stays

    batches, first, last = run(scenario())
    assert batches == [[0], [2]]
    assert (first, last) == (0, 4)
