"""The batcher every modality uses: batches form when the model is free, within the size cap,
and every caller gets its own result or its own error, or nothing at all once it has gone away
or its deadline has passed."""

from __future__ import annotations

import asyncio
import time

import pytest

from deployments.core.config import Batching
from deployments.core.errors import DeadlineExceeded, InvalidRequest, ServeError, Undecodable
from deployments.replicas.batcher import DynamicBatcher, all_or_none, run_valid_rows
from serve_app.http_errors import status_of


class SlowModel:
    """Doubles its inputs and records each call. With `held`, its first call runs until the
    test sets `release`: the items sent meanwhile queue, however slow the machine."""

    def __init__(self, seconds: float = 0.0, fail_on: object = None,
                 held: bool = False) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.batches: list[list] = []
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        if len(self.batches) == 1:
            await self.release.wait()
        if self.fail_on in items:
            raise ValueError(f"cannot embed {self.fail_on}")
        return [2 * item for item in items]


async def busy_batcher():
    """A batcher whose model is running a first batch (item 0) until `model.release` is set:
    (model, events, batcher, the first call's task)."""
    model, events = SlowModel(held=True), []
    batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.01,
                             on_event=events.append)
    running = asyncio.ensure_future(batcher(0))
    while not model.batches:
        await asyncio.sleep(0)
    return model, events, batcher, running


async def past(deadline: float) -> None:
    while time.time() <= deadline:
        await asyncio.sleep(0.01)


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
        model, _, batcher, first = await busy_batcher()
        later = []
        for i in range(1, 6):  # spread out: a timer-closed batch would split them
            later.append(asyncio.ensure_future(batcher(i)))
            await asyncio.sleep(0.03)
        model.release.set()
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


def test_a_batch_that_fails_whole_is_rerun_row_by_row_so_only_the_bad_row_fails():
    async def scenario():
        model, events = SlowModel(fail_on=3), []
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.05,
                                 on_event=events.append)
        outcomes = await asyncio.gather(*(batcher(i) for i in range(4)), return_exceptions=True)
        return outcomes, model.batches, events, await batcher(10)

    outcomes, batches, events, after = run(scenario())
    assert outcomes[:3] == [0, 2, 4]
    assert isinstance(outcomes[3], ValueError) and "cannot embed 3" in str(outcomes[3])
    assert batches == [[0, 1, 2, 3], [0], [1], [2], [3], [10]]  # each rerun alone, once
    assert events == ["batch_failed"]
    assert after == 20


def test_a_batch_of_one_that_fails_fails_only_its_caller_without_a_rerun():
    async def scenario():
        model = SlowModel(fail_on=5)
        batcher = DynamicBatcher(model, max_batch_size=8, batch_wait_timeout_s=0.0)
        with pytest.raises(ValueError):
            await batcher(5)
        return model.batches

    assert run(scenario()) == [[5]]


def test_an_exception_returned_for_one_item_goes_to_that_caller_alone():
    async def halve_evens(items: list) -> list:
        return [item // 2 if item % 2 == 0 else InvalidRequest(f"{item} is odd")
                for item in items]

    async def scenario():
        batcher = DynamicBatcher(halve_evens, max_batch_size=8, batch_wait_timeout_s=0.05)
        return await asyncio.gather(*(batcher(i) for i in (2, 3, 4)), return_exceptions=True)

    low, odd, high = run(scenario())
    assert (low, high) == (1, 2)
    assert isinstance(odd, ServeError) and status_of(odd) == 400


def test_an_item_whose_deadline_passed_while_queued_is_dropped_not_computed():
    async def scenario():
        model, events, batcher, running = await busy_batcher()
        deadline = time.time() + 0.1
        late = asyncio.ensure_future(batcher(1, deadline=deadline))
        on_time = asyncio.ensure_future(batcher(2, deadline=time.time() + 30))
        await past(deadline)
        model.release.set()
        outcomes = await asyncio.gather(running, late, on_time, return_exceptions=True)
        return outcomes, model.batches, events

    (first, late, on_time), batches, events = run(scenario())
    assert isinstance(late, DeadlineExceeded) and status_of(late) == 504
    assert (first, on_time) == (0, 4)
    assert batches == [[0], [2]]
    assert events == ["deadline_dropped"]


def test_a_caller_that_gave_up_at_its_deadline_counts_as_a_deadline_drop():
    async def scenario():
        model, events, batcher, running = await busy_batcher()
        with pytest.raises(TimeoutError):  # as the ingress does: it stops waiting at the deadline
            await asyncio.wait_for(batcher(1, deadline=time.time() + 0.1), 0.1)
        model.release.set()
        await running
        return model.batches, events

    assert run(scenario()) == ([[0]], ["deadline_dropped"])


def test_a_batch_returning_the_wrong_number_of_results_is_an_error():
    async def short(items: list) -> list:
        return items[:-1]

    async def scenario():
        batcher = DynamicBatcher(short, max_batch_size=8, batch_wait_timeout_s=0.05)
        return await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in run(scenario()))


def test_a_caller_that_went_away_is_left_out_of_its_batch():
    async def scenario():
        model, events, batcher, running = await busy_batcher()
        gone, stays = asyncio.ensure_future(batcher(1)), asyncio.ensure_future(batcher(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        model.release.set()
        return model.batches, await running, await stays, events

    batches, first, last, events = run(scenario())
    assert batches == [[0], [2]]
    assert (first, last) == (0, 4)
    assert events == ["cancelled"]


def test_when_one_item_of_a_request_fails_its_other_items_leave_the_queue():
    async def scenario():
        model, events, batcher, running = await busy_batcher()

        async def fails_soon():
            await asyncio.sleep(0.01)
            raise Undecodable("input 1 is not an image")

        with pytest.raises(ServeError):
            await all_or_none([batcher(1), fails_soon(), batcher(2)])
        model.release.set()
        await running
        await batcher(3)
        return model.batches, events

    batches, events = run(scenario())
    assert batches == [[0], [3]]
    assert events == ["cancelled"] * 2


def test_rows_a_check_rejects_get_its_error_and_the_model_sees_only_the_rest():
    seen = []

    async def model(items: list) -> list:
        seen.append(list(items))
        return [item.upper() for item in items]

    def must_be_text(item) -> None:
        if not isinstance(item, str):
            raise InvalidRequest("not text")

    outcomes = run(run_valid_rows(["a", 7, "b"], must_be_text, model))
    assert outcomes[0] == "A" and outcomes[2] == "B"
    assert isinstance(outcomes[1], ServeError)
    assert seen == [["a", "b"]]


def test_with_the_default_window_a_lone_request_finds_the_free_model_at_once():
    async def scenario():
        model = SlowModel()
        defaults = Batching()
        batcher = DynamicBatcher(model, defaults.max_batch_size, defaults.batch_wait_timeout_s)
        lone = asyncio.ensure_future(batcher(1))
        for _ in range(3):  # a few turns of the event loop, no time for a window to pass
            await asyncio.sleep(0)
        called = list(model.batches)
        await lone
        return called

    assert run(scenario()) == [[1]]
