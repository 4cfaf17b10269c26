"""A batcher's queue bounded by `max_waiting`, on a fake clock and a synthetic model whose
calls take latency(n) = 0.1 + 0.05 n: when full, the item served last is turned away (batch
before interactive, then the newest of the tenant furthest past its fair share), so a flood
is shed while another tenant's items keep their places; with one tenant, the newcomer is
turned away; live changes of the bound take effect on the next arrival."""

from __future__ import annotations

import asyncio

import pytest

from deployments.core.errors import Overloaded
from deployments.core.fair_share import Share
from deployments.replicas.batcher import DynamicBatcher
from deployments.replicas.latency_model import LatencyModel
from tests.unit.test_batcher_fair_share import busy, served

A, B = Share(tenant="a"), Share(tenant="b")
NIGHTLY = Share("batch", "nightly")


def bounded(batcher: DynamicBatcher, items: int) -> DynamicBatcher:
    batcher.set_max_waiting(items)
    return batcher


async def send(batcher: DynamicBatcher, item: str, **kwargs) -> asyncio.Future:
    """Queues one item; by the return, it or the item it took the place of has its answer."""
    call = asyncio.ensure_future(batcher(item, **kwargs))
    for _ in range(2):  # queued or turned away; a caller turned away wakes up
        await asyncio.sleep(0)
    return call


def shed(call: asyncio.Future) -> bool:
    return call.done() and isinstance(call.exception(), Overloaded)


def test_a_full_queue_of_one_tenant_turns_the_newcomer_away():
    async def scenario():
        model, batcher, first, events = await busy("fifo", max_batch_size=2)
        bounded(batcher, 3)
        calls = [await send(batcher, f"q{i}") for i in range(5)]
        assert [shed(call) for call in calls] == [False, False, False, True, True]
        error = calls[3].exception()
        assert error.retry_after_s >= 1.0
        assert events.count("shed") == 2
        return await served(model, first, calls[:3])

    assert asyncio.run(scenario()) == [["q0", "q1"], ["q2"]]


def test_a_flood_is_shed_and_the_other_tenant_keeps_its_places():
    async def scenario():
        model, batcher, first, _ = await busy("fifo", max_batch_size=4)
        bounded(batcher, 4)
        flood = [await send(batcher, f"a{i}", share=A) for i in range(4)]
        steady = [await send(batcher, f"b{i}", share=B) for i in range(2)]
        # Each of b's items took the place of a's newest: a had the larger share queued.
        assert [shed(call) for call in flood] == [False, False, True, True]
        assert not any(shed(call) for call in steady)
        return await served(model, first, flood[:2] + steady)

    batches = asyncio.run(scenario())
    assert sorted(batches[0]) == ["a0", "a1", "b0", "b1"]


def test_an_interactive_item_sheds_a_queued_batch_item_first():
    async def scenario():
        model, batcher, first, _ = await busy("fifo", max_batch_size=4)
        bounded(batcher, 2)
        nightly = [await send(batcher, f"n{i}", share=NIGHTLY) for i in range(2)]
        interactive = [await send(batcher, f"i{i}", share=A) for i in range(2)]
        late_batch = await send(batcher, "n-late", share=NIGHTLY)
        assert [shed(call) for call in nightly] == [True, True]
        assert not any(shed(call) for call in interactive)
        assert shed(late_batch)  # a batch item finds no batch item to take the place of
        return await served(model, first, interactive)

    assert asyncio.run(scenario())[0] == ["i0", "i1"]


def test_under_slo_the_latest_objective_is_shed():
    async def scenario():
        model, batcher, first, _ = await busy("slo", max_batch_size=4,
                                              latency_model=LatencyModel())
        bounded(batcher, 2)
        now = batcher._wall_clock()
        late = await send(batcher, "late", objective=now + 50)
        soon = await send(batcher, "soon", objective=now + 5)
        sooner = await send(batcher, "sooner", objective=now + 3)
        assert shed(late) and not shed(soon) and not shed(sooner)
        return await served(model, first, [soon, sooner])

    assert asyncio.run(scenario())[0] == ["sooner", "soon"]


def test_no_bound_queues_everything():
    async def scenario():
        model, batcher, first, events = await busy("fifo", max_batch_size=8)
        calls = [await send(batcher, f"q{i}") for i in range(20)]
        assert not any(shed(call) for call in calls)
        bounded(batcher, 5)  # live: the next arrival finds 20 waiting
        later = await send(batcher, "later")
        assert shed(later) and events.count("shed") == 1
        await served(model, first, calls)

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["fifo", "slo"])
def test_items_no_longer_wanted_make_room_first(policy):
    async def scenario():
        model, batcher, first, _ = await busy(policy, max_batch_size=4)
        bounded(batcher, 2)
        gone = await send(batcher, "gone")
        kept = await send(batcher, "kept")
        gone.cancel()
        await asyncio.sleep(0)
        newcomer = await send(batcher, "new")
        assert not shed(kept) and not shed(newcomer)
        return await served(model, first, [kept, newcomer])

    assert asyncio.run(scenario())[0] == ["kept", "new"]
