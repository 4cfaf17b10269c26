"""The serving order of a queue shared by tenants: interactive before batch, the tenants of a
class by weighted fair share (start-time fair queuing), the queue's own order within a tenant;
one tenant in one class is served in that order alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from deployments.core.fair_share import ANONYMOUS, FairShares, Share

A, B, C = Share(tenant="a"), Share(tenant="b"), Share(tenant="c")
BATCH = Share("batch", "nightly")


@dataclass(frozen=True)
class Item:
    name: str
    share: Share = ANONYMOUS
    objective: float = 0.0


def names(items: list[Item]) -> list[str]:
    return [item.name for item in items]


def order(shares: FairShares, items: list[Item], by_objective: bool = False) -> list[str]:
    key = (lambda item: item.objective) if by_objective else None
    return names(shares.order(items, lambda item: item.share, key))


def serve_in_order(shares: FairShares, items: list[Item], count: int) -> list[Item]:
    """Serves the first `count` items of the serving order, as a queue takes them."""
    taken = shares.order(items, lambda item: item.share)[:count]
    for item in taken:
        shares.serve(item.share)
        items.remove(item)
    return taken


def test_one_tenant_in_one_class_is_served_in_arrival_order_or_by_its_key():
    items = [Item(f"r{i}", objective=float(10 - i)) for i in range(5)]
    assert order(FairShares(), items) == ["r0", "r1", "r2", "r3", "r4"]
    assert order(FairShares(), items, by_objective=True) == ["r4", "r3", "r2", "r1", "r0"]


def test_every_interactive_item_goes_before_every_batch_item():
    items = [Item("batch-0", BATCH), Item("batch-1", BATCH), Item("a-0", A),
             Item("batch-2", BATCH), Item("b-0", B)]
    assert order(FairShares(), items) == ["a-0", "b-0", "batch-0", "batch-1", "batch-2"]


def test_a_tenant_that_floods_first_is_interleaved_with_the_one_that_comes_after():
    items = [Item(f"a{i}", A) for i in range(6)] + [Item(f"b{i}", B) for i in range(3)]
    assert order(FairShares(), items) == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "a4", "a5"]


def test_within_a_tenant_the_key_orders_and_across_tenants_the_share_does():
    items = [Item("a-late", A, 50.0), Item("a-soon", A, 10.0), Item("b-any", B, 99.0)]
    assert order(FairShares(), items, by_objective=True) == ["a-soon", "b-any", "a-late"]


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0), (2.5, 0.5)])
def test_two_backlogged_tenants_share_the_service_by_their_weights(weights):
    flood, steady = Share(tenant="flood", weight=weights[0]), Share(tenant="steady",
                                                                    weight=weights[1])
    shares, served = FairShares(), Counter()
    queue = [Item(f"f{i}", flood) for i in range(400)] + [Item(f"s{i}", steady)
                                                          for i in range(400)]
    for _ in range(50):  # batches of 4 while both still wait
        for item in serve_in_order(shares, queue, 4):
            served[item.share.tenant] += 1
        fraction = weights[1] / sum(weights)
        total = served["flood"] + served["steady"]
        assert served["steady"] >= fraction * total - 1  # within one item of its share
        assert served["flood"] >= (1 - fraction) * total - 1


def test_a_flood_arriving_faster_than_service_leaves_the_other_tenant_its_share():
    """Each tick the flooding tenant sends 10 items and the steady one 1; the server serves
    2: the steady tenant, asking less than its half, is served every item at once."""
    shares, queue, steady_waits = FairShares(), [], []
    for tick in range(100):
        queue += [Item(f"a{tick}-{i}", A) for i in range(10)] + [Item(f"b{tick}", B)]
        taken = serve_in_order(shares, queue, 2)
        steady_waits += [tick - int(item.name[1:]) for item in taken if item.share == B]
    assert len(steady_waits) == 100 and max(steady_waits) == 0


def test_a_tenant_that_was_idle_earns_no_credit_for_a_burst():
    shares = FairShares()
    queue = [Item(f"a{i}", A) for i in range(100)]
    serve_in_order(shares, queue, 100)  # a alone: b idle all along
    queue = [Item(f"b{i}", B) for i in range(10)] + [Item(f"a-more{i}", A) for i in range(10)]
    first_ten = names(serve_in_order(shares, queue, 10))
    assert abs(sum(name.startswith("b") for name in first_ten) - 5) <= 1  # half, not all ten


def test_three_tenants_with_weights_get_service_in_proportion():
    shares = FairShares()
    heavy = Share(tenant="heavy", weight=2.0)
    queue = [Item(f"{share.tenant}{i}", share) for share in (heavy, B, C) for i in range(100)]
    served = Counter(item.share.tenant for item in serve_in_order(shares, queue, 40))
    assert served == {"heavy": 20, "b": 10, "c": 10}


def test_classes_keep_their_own_virtual_time():
    shares = FairShares()
    for _ in range(10):
        shares.serve(BATCH)
    assert shares.start(A) == 0.0 and shares.start(BATCH) == 10.0


def test_ordering_serves_nothing():
    shares = FairShares()
    items = [Item("a", A), Item("b", B)]
    shares.order(items, lambda item: item.share)
    assert shares.start(A) == shares.start(B) == 0.0


def test_stamping_on_arrival_moves_the_tenant_on_and_the_class_when_reached():
    shares = FairShares()
    assert [shares.stamp(A) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert shares.start(B) == 0.0  # b arriving now goes with a's first
    shares.reached(A.rank, 2.0)
    assert shares.start(B) == 2.0  # idle until now: no credit from before
