"""The batcher's "slo" policy on a fake clock and a synthetic model whose calls take
latency(n) = 0.1 + 0.05 n: earliest objective first, items without one after; a request
predicted to miss its objective turned away at once with a computed Retry-After; the largest
batch that meets the earliest objective in it; hopeless items served after the rest, not
dropped; and before the latency model has seen a batch, everything admitted, batches largest."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from deployments.core.errors import DeadlineExceeded, SloUnreachable
from deployments.replicas.batcher import DynamicBatcher
from deployments.replicas.latency_model import LatencyModel
from serve_app.http_errors import error_headers, status_of
from tests.unit.fake_clock import FakeClock

T0 = 1_000.0


def latency(size: int) -> float:
    return 0.1 + 0.05 * size


class SyntheticModel:
    """Doubles its inputs, records each batch and moves the clock on by latency(n). Its first
    batch runs until the test sets `release`, so the items sent meanwhile queue."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.batches: list[list] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()
        self.clock.now += latency(len(items))
        return [2 * item for item in items]


def taught() -> LatencyModel:
    model = LatencyModel()
    for size in (1, 2, 3, 4):
        model.observe(size, latency(size))
    return model


async def busy(max_batch_size: int = 8, latency_model: LatencyModel | None = None,
               policy: str = "slo"):
    """A batcher whose model runs item 0 (a batch of one begun at T0) until `model.release`:
    (model, events, batcher, the first call's task)."""
    clock, events = FakeClock(T0), []
    model = SyntheticModel(clock)
    batcher = DynamicBatcher(model, max_batch_size=max_batch_size, on_event=events.append,
                             policy=policy, wall_clock=clock, monotonic_clock=clock,
                             latency_model=latency_model if latency_model else taught())
    first = asyncio.ensure_future(batcher(0))
    while not model.batches:
        await asyncio.sleep(0)
    return model, events, batcher, first


async def queued(batcher: DynamicBatcher, item: int, **kwargs) -> asyncio.Future:
    call = asyncio.ensure_future(batcher(item, **kwargs))
    await asyncio.sleep(0)  # the call has queued its item, or raised
    return call


async def refused(batcher: DynamicBatcher, item: int, **kwargs) -> SloUnreachable:
    """The error of a call that must be turned away before it queues."""
    call = await queued(batcher, item, **kwargs)
    assert call.done(), "queued instead of turned away"
    assert isinstance(call.exception(), SloUnreachable)
    return call.exception()


def run(coroutine):
    return asyncio.run(coroutine)


def test_earliest_objective_first_ties_by_arrival_and_items_without_one_last_in_order():
    async def scenario():
        model, _, batcher, first = await busy(max_batch_size=1)
        objectives = {1: T0 + 30, 2: None, 3: T0 + 10, 4: None, 5: T0 + 20, 6: T0 + 10}
        calls = [await queued(batcher, item, objective=objective)
                 for item, objective in objectives.items()]
        model.release.set()
        return await asyncio.gather(first, *calls), model.batches

    results, batches = run(scenario())
    assert batches == [[0], [3], [6], [5], [1], [2], [4]]
    assert results == [0, 2, 4, 6, 8, 10, 12]


def test_the_batch_is_the_largest_that_meets_the_earliest_objective_in_it():
    async def scenario():
        model, _, batcher, first = await busy(max_batch_size=8)
        free_at = T0 + latency(1)  # when item 0's batch ends
        # latency(3) = 0.25 fits in 0.27 s, latency(4) = 0.30 does not.
        calls = [await queued(batcher, 1, objective=free_at + 0.27)]
        calls += [await queued(batcher, item, objective=T0 + 5) for item in range(2, 7)]
        model.release.set()
        await asyncio.gather(first, *calls)
        return model.batches

    assert run(scenario()) == [[0], [1, 2, 3], [4, 5, 6]]


def test_items_without_an_objective_fill_the_batch_while_the_earliest_objective_allows():
    async def scenario():
        model, _, batcher, first = await busy(max_batch_size=8)
        calls = [await queued(batcher, 1, objective=T0 + latency(1) + 0.27)]
        calls += [await queued(batcher, item) for item in range(2, 7)]
        model.release.set()
        await asyncio.gather(first, *calls)
        return model.batches

    assert run(scenario()) == [[0], [1, 2, 3], [4, 5, 6]]


def test_a_request_predicted_to_miss_is_turned_away_at_once_with_a_computed_retry_after():
    async def scenario():
        latency_model = LatencyModel()  # nothing seen yet: the 20 below are all admitted
        model, events, batcher, first = await busy(max_batch_size=2, latency_model=latency_model)
        calls = [await queued(batcher, item, objective=T0 + 1) for item in range(1, 21)]
        for size in (1, 2, 3):  # now the model knows each batch of 2 takes 0.2 s
            latency_model.observe(size, latency(size))
        before = batcher.forecast()
        rejected = await refused(batcher, 99, objective=T0 + 1)
        after = batcher.forecast()
        calls.append(await queued(batcher, 21))  # no objective: never rejected
        model.release.set()
        await asyncio.gather(first, *calls)
        return rejected, events, before, after, model.batches

    error, events, before, after, batches = run(scenario())
    # Left of item 0: 0.15 s; then 10 batches of 2 for the 20 ahead (2 s) and its own (0.15 s).
    assert error.predicted_wait_s == pytest.approx(2.3)
    assert error.objective_in_s == pytest.approx(1.0)
    assert error.retry_after_s == pytest.approx(1.3)  # what the queue ahead must drain first
    assert "2.30 s" in str(error) and "1.00 s" in str(error)
    assert status_of(error) == 429 and error_headers(error) == {"Retry-After": "2"}
    assert events == ["slo_rejected"]
    assert before == after and before.queued == 20
    assert sorted(item for batch in batches for item in batch) == list(range(22))


def test_retry_after_is_at_least_a_second():
    async def scenario():
        model, _, batcher, first = await busy(max_batch_size=8)
        rejected = await refused(batcher, 1, objective=T0 + 0.29)  # 0.15 left, 0.15 alone
        model.release.set()
        await first
        return rejected

    error = run(scenario())
    assert error.predicted_wait_s == pytest.approx(0.3)
    assert error.retry_after_s == 1.0


def test_items_ahead_that_can_no_longer_make_it_do_not_count_against_a_new_one():
    async def scenario():
        latency_model = LatencyModel()  # nothing seen yet: item 1, already late, is admitted
        model, events, batcher, first = await busy(max_batch_size=1, latency_model=latency_model)
        hopeless = await queued(batcher, 1, objective=T0 - 1)
        for size in (1, 2):
            latency_model.observe(size, latency(size))
        # 0.15 s left of item 0, then 0.15 s alone: in time, unless it waited for item 1 too.
        admitted = await queued(batcher, 2, objective=T0 + 0.35)
        model.release.set()
        await asyncio.gather(first, hopeless, admitted)
        return model.batches, events

    assert run(scenario()) == ([[0], [2], [1]], [])


def test_the_rejection_survives_the_trip_from_a_replica():
    sent = SloUnreachable(2.3, -0.5, retry_after_s=2.8)
    error = pickle.loads(pickle.dumps(sent))
    assert isinstance(error, SloUnreachable)
    assert (error.predicted_wait_s, error.objective_in_s, error.retry_after_s) == (2.3, -0.5, 2.8)
    assert str(error) == str(sent) and "0.50 s ago" in str(error)


def test_items_that_can_no_longer_make_it_are_served_after_the_rest_not_dropped():
    async def scenario():
        model, events, batcher, first = await busy(max_batch_size=8)
        late_a = await queued(batcher, 1, objective=T0 + 1.0)
        late_c = await queued(batcher, 3, objective=T0 + 1.1)
        expires = await queued(batcher, 4, objective=T0 + 1.05, deadline=T0 + 1.5)
        on_time = await queued(batcher, 2, objective=T0 + 10)
        model.clock.now += 1.5  # item 0 runs long: when it ends only item 2 can make it
        model.release.set()
        outcomes = await asyncio.gather(first, late_a, late_c, expires, on_time,
                                        return_exceptions=True)
        return outcomes, model.batches, events

    (_, late_a, late_c, expired, on_time), batches, events = run(scenario())
    assert batches == [[0], [2], [1, 3]]  # the hopeless two after, at the largest batch
    assert (late_a, late_c, on_time) == (2, 6, 4)
    assert isinstance(expired, DeadlineExceeded)  # its hard deadline still drops it
    assert events == ["deadline_dropped"]


def test_before_the_model_has_seen_a_batch_everything_is_admitted_at_the_largest_batch():
    async def scenario():
        latency_model = LatencyModel()
        model, events, batcher, first = await busy(max_batch_size=3, latency_model=latency_model)
        calls = [await queued(batcher, item, objective=T0 - 1) for item in range(1, 5)]
        model.release.set()
        await asyncio.gather(first, *calls)
        return model.batches, events, latency_model.latency(2)

    batches, events, learned = run(scenario())
    assert batches == [[0], [1, 2, 3], [4]]
    assert events == []
    assert learned == pytest.approx(latency(2))  # from the batches of 1 and 3 it ran


def test_the_forecast_is_the_service_rate_and_the_seconds_to_drain_the_queue():
    async def scenario():
        untaught = DynamicBatcher(SyntheticModel(FakeClock(T0)), policy="slo",
                                  latency_model=LatencyModel()).forecast()
        model, _, batcher, first = await busy(max_batch_size=2)
        calls = [await queued(batcher, item, objective=T0 + 9) for item in range(1, 6)]
        forecast = batcher.forecast()
        model.release.set()
        await asyncio.gather(first, *calls)
        return untaught, forecast

    untaught, forecast = run(scenario())
    assert (untaught.service_rate, untaught.drain_s) == (None, None)
    assert forecast.queued == 5
    assert forecast.service_rate == pytest.approx(2 / latency(2))
    assert forecast.drain_s == pytest.approx(latency(1) + 2 * latency(2) + latency(1))


def test_fifo_ignores_objectives_it_would_reject():
    async def scenario():
        model, events, batcher, first = await busy(max_batch_size=8, policy="fifo")
        calls = [await queued(batcher, 1, objective=T0 + 30), await queued(batcher, 2),
                 await queued(batcher, 3, objective=T0 - 1)]
        model.release.set()
        await asyncio.gather(first, *calls)
        return model.batches, events

    assert run(scenario()) == ([[0], [1, 2, 3]], [])


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        DynamicBatcher(SyntheticModel(FakeClock(T0)), policy="lifo")


def test_switching_policy_live_puts_the_queue_in_the_new_order():
    async def scenario():
        model, _, batcher, first = await busy(max_batch_size=1, policy="fifo")
        objectives = {1: T0 + 30, 2: None, 3: T0 + 10}
        calls = [await queued(batcher, item, objective=objective)
                 for item, objective in objectives.items()]
        batcher.set_policy("slo")
        model.release.set()
        await asyncio.gather(first, *calls)
        return model.batches

    assert run(scenario()) == [[0], [3], [1], [2]]
    with pytest.raises(ValueError, match="policy"):
        DynamicBatcher(lambda items: items).set_policy("lifo")


def test_an_item_that_would_start_at_once_is_admitted_whatever_the_model_predicts():
    """The model thinks a call takes 5 s (a first call that built the model, say): an idle
    batcher still takes an item due in 1 s, and its call teaches the model the real time."""
    async def scenario():
        clock, events = FakeClock(T0), []
        latency_model = LatencyModel(forgetting=0.5)
        latency_model.observe(1, 5.0)
        batcher = DynamicBatcher(SyntheticModel(clock), policy="slo", on_event=events.append,
                                 wall_clock=clock, monotonic_clock=clock, cold_calls=0,
                                 latency_model=latency_model)
        batcher.run_batch.release.set()
        answers = [await batcher(item, objective=clock.now + 1) for item in (1, 2, 3)]
        return answers, events, latency_model.latency(1)

    answers, events, learned = run(scenario())
    assert answers == [2, 4, 6] and events == []
    assert learned < 1.0  # the 5 s call weighs 1/8 now, each 0.15 s one 1/4 to 1


def test_the_first_call_teaches_the_model_nothing():
    async def scenario():
        clock, latency_model = FakeClock(T0), LatencyModel()
        model = SyntheticModel(clock)
        model.release.set()
        batcher = DynamicBatcher(model, policy="slo", wall_clock=clock, monotonic_clock=clock,
                                 latency_model=latency_model)
        await batcher(1)
        cold = latency_model.can_predict
        await batcher(2)
        return cold, latency_model.latency(1)

    cold, learned = run(scenario())
    assert not cold and learned == pytest.approx(latency(1))
