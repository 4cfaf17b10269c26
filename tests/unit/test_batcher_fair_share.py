"""The batcher's queue shared by tenants, on a fake clock and a synthetic model whose calls
take latency(n) = 0.1 + 0.05 n: interactive items before batch ones, a flooding tenant
interleaved with another of its class, each tenant's items in the policy's order; the
anonymous API under fifo in arrival order exactly; and under slo, batch turned away first and
a tenant's admission not priced behind another tenant's flood."""

from __future__ import annotations

import asyncio

import pytest

from deployments.core.errors import SloUnreachable
from deployments.core.fair_share import Share
from deployments.replicas.batcher import DynamicBatcher
from deployments.replicas.latency_model import LatencyModel
from tests.unit.fake_clock import FakeClock

T0 = 1_000.0
A, B = Share(tenant="a"), Share(tenant="b")
NIGHTLY = Share("batch", "nightly")


def latency(size: int) -> float:
    return 0.1 + 0.05 * size


class HeldModel:
    """Returns its items, records each batch and moves the clock on by latency(n); its first
    batch runs until the test sets `release`, so what is sent meanwhile queues."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.batches, self.release = clock, [], asyncio.Event()

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()
        self.clock.now += latency(len(items))
        return list(items)


def taught() -> LatencyModel:
    model = LatencyModel()
    for size in (1, 2, 3, 4):
        model.observe(size, latency(size))
    return model


async def busy(policy: str, max_batch_size: int, latency_model: LatencyModel | None = None):
    """A batcher whose model runs item "first" until `model.release`: (model, batcher, the
    first call, events)."""
    clock, events = FakeClock(T0), []
    model = HeldModel(clock)
    batcher = DynamicBatcher(model, max_batch_size=max_batch_size, batch_wait_timeout_s=0.0,
                             policy=policy, on_event=events.append, wall_clock=clock,
                             monotonic_clock=clock,
                             latency_model=latency_model if latency_model else taught())
    first = asyncio.ensure_future(batcher("first"))
    while not model.batches:
        await asyncio.sleep(0)
    return model, batcher, first, events


async def send(batcher: DynamicBatcher, item: str, **kwargs) -> asyncio.Future:
    call = asyncio.ensure_future(batcher(item, **kwargs))
    await asyncio.sleep(0)  # queued, or turned away
    return call


async def served(model: HeldModel, first: asyncio.Future, calls: list) -> list[list[str]]:
    model.release.set()
    await asyncio.gather(first, *calls, return_exceptions=True)
    return model.batches[1:]


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("policy", ["fifo", "slo"])
def test_interactive_items_are_batched_before_batch_items_that_came_first(policy):
    async def scenario():
        model, batcher, first, _ = await busy(policy, max_batch_size=2)
        calls = [await send(batcher, f"nightly{i}", share=NIGHTLY, objective=T0 + 60)
                 for i in range(4)]
        calls += [await send(batcher, f"a{i}", share=A, objective=T0 + 60) for i in range(2)]
        return await served(model, first, calls)

    assert run(scenario()) == [["a0", "a1"], ["nightly0", "nightly1"], ["nightly2", "nightly3"]]


def test_a_flooding_tenant_leaves_the_other_tenant_of_its_class_its_half():
    async def scenario():
        model, batcher, first, _ = await busy("fifo", max_batch_size=4)
        calls = [await send(batcher, f"a{i}", share=A) for i in range(12)]
        calls += [await send(batcher, f"b{i}", share=B) for i in range(3)]
        return await served(model, first, calls)

    batches = run(scenario())
    assert batches[0] == ["a0", "b0", "a1", "b1"]
    assert batches[1] == ["a2", "b2", "a3", "a4"]  # b's last: served in the second batch
    assert [item for batch in batches for item in batch if item.startswith("a")] == \
        [f"a{i}" for i in range(12)]  # each tenant's own in arrival order


def test_weights_set_each_tenants_part_of_every_batch():
    heavy = Share(tenant="heavy", weight=3.0)

    async def scenario():
        model, batcher, first, _ = await busy("fifo", max_batch_size=4)
        calls = [await send(batcher, f"b{i}", share=B) for i in range(8)]
        calls += [await send(batcher, f"heavy{i}", share=heavy) for i in range(24)]
        return await served(model, first, calls)

    for batch in run(scenario())[:8]:  # while both wait: 3 of heavy's to 1 of b's
        assert sum(item.startswith("heavy") for item in batch) == 3


def test_the_anonymous_api_under_fifo_is_served_in_arrival_order_exactly():
    async def scenario():
        model, batcher, first, _ = await busy("fifo", max_batch_size=3)
        objectives = [T0 + 9, None, T0 + 1, T0 + 5, None, T0 + 2, T0 + 3]
        calls = [await send(batcher, f"r{i}", objective=objective)
                 for i, objective in enumerate(objectives)]
        return await served(model, first, calls)

    assert run(scenario()) == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]


def test_under_slo_a_batch_item_is_turned_away_where_an_interactive_one_is_admitted():
    async def scenario():
        latency_model = LatencyModel()  # nothing learnt: the batch items are all admitted
        model, batcher, first, events = await busy("slo", 2, latency_model)
        # 10 batch items due sooner: 5 batches of 2 (1 s) after item "first" (0.15 s left).
        calls = [await send(batcher, f"nightly{i}", share=NIGHTLY, objective=T0 + 0.9)
                 for i in range(10)]
        for size in (1, 2, 3):
            latency_model.observe(size, latency(size))
        interactive = await send(batcher, "a0", share=A, objective=T0 + 1.0)
        late_batch = await send(batcher, "nightly-late", share=NIGHTLY, objective=T0 + 1.0)
        return interactive, late_batch, events, await served(model, first, calls + [interactive])

    interactive, late_batch, events, batches = run(scenario())
    assert isinstance(late_batch.exception(), SloUnreachable)
    assert interactive.result() == "a0" and batches[0] == ["a0", "nightly0"]
    assert events == ["slo_rejected"]


def test_under_slo_a_tenant_is_not_priced_behind_another_tenants_flood():
    async def scenario():
        latency_model = LatencyModel()  # nothing learnt: a's flood is all admitted
        model, batcher, first, events = await busy("slo", 2, latency_model)
        calls = [await send(batcher, f"a{i}", share=A, objective=T0 + 0.9) for i in range(20)]
        for size in (1, 2, 3):
            latency_model.observe(size, latency(size))
        b = await send(batcher, "b0", share=B, objective=T0 + 1.0)  # one of a's ahead of it
        more_a = await send(batcher, "a-more", share=A, objective=T0 + 1.0)  # twenty ahead
        return b, more_a, events, await served(model, first, calls + [b])

    b, more_a, events, batches = run(scenario())
    assert b.result() == "b0" and "b0" in batches[0]
    assert isinstance(more_a.exception(), SloUnreachable) and events == ["slo_rejected"]
