"""The order a text engine serves its waiting requests in: by arrival under "fifo"; under "slo"
the earliest objective first, requests without one after all that have one, ties by arrival;
and before either, interactive before batch and the tenants of a class by weighted fair
share."""

from __future__ import annotations

import threading

import pytest

from deployments.core.fair_share import Share
from deployments.engines.waiting_queue import WaitingQueue, serving_key

# (name, objective) in arrival order
ARRIVALS = [("late", 130.0), ("none", None), ("soon", 110.0), ("tied", 120.0),
            ("tied-after", 120.0), ("none-after", None)]


def queued(policy: str) -> WaitingQueue[str]:
    queue: WaitingQueue[str] = WaitingQueue(policy)
    for name, objective in ARRIVALS:
        queue.add(name, objective)
    return queue


def test_slo_serves_the_earliest_objective_first_and_no_objective_last():
    assert queued("slo").drain() == ["soon", "tied", "tied-after", "late", "none", "none-after"]


def test_fifo_serves_by_arrival_whatever_the_objectives():
    assert queued("fifo").drain() == [name for name, _ in ARRIVALS]


def test_the_key_orders_objectives_before_none_and_ties_by_arrival():
    assert serving_key("slo", 5.0, 9) < serving_key("slo", 6.0, 1) < serving_key("slo", None, 0)
    assert serving_key("slo", 5.0, 1) < serving_key("slo", 5.0, 2)
    assert serving_key("slo", None, 1) < serving_key("slo", None, 2)
    assert serving_key("fifo", None, 1) < serving_key("fifo", 1.0, 2)


def test_an_objective_already_past_still_comes_first():
    queue: WaitingQueue[str] = WaitingQueue("slo")
    queue.add("later", 2_000_000_000.0)
    queue.add("overdue", 1.0)
    assert queue.drain() == ["overdue", "later"]


def test_pop_if_takes_the_first_only_when_it_is_accepted():
    queue = queued("slo")
    assert queue.pop_if(lambda name: name != "soon") is None
    assert len(queue) == len(ARRIVALS)
    assert queue.pop_if(lambda name: True) == "soon"
    assert queue.pop_if(lambda name: True) == "tied"
    assert len(queue) == len(ARRIVALS) - 2


def test_an_empty_queue_is_false_and_pops_nothing():
    queue: WaitingQueue[str] = WaitingQueue("slo")
    assert not queue and len(queue) == 0
    assert queue.pop_if(lambda name: True) is None
    queue.add("a", None)
    assert queue
    assert queue.drain() == ["a"] and not queue


def test_items_are_never_compared_with_each_other():
    class Incomparable:
        def __lt__(self, other):
            raise AssertionError("compared")

    queue: WaitingQueue[Incomparable] = WaitingQueue("slo")
    rows = [Incomparable() for _ in range(3)]
    for row in rows:
        queue.add(row, 1.0)
    assert queue.drain() == rows


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="fifo"):
        WaitingQueue("edf")


def test_adds_from_other_threads_lose_no_request():
    queue: WaitingQueue[int] = WaitingQueue("slo")

    def add_many(start: int) -> None:
        for i in range(start, start + 500):
            queue.add(i, float(i % 7))

    threads = [threading.Thread(target=add_many, args=(k * 500,)) for k in range(4)]
    for thread in threads:
        thread.start()
    taken = []
    while any(t.is_alive() for t in threads) or queue:
        item = queue.pop_if(lambda _: True)
        if item is not None:
            taken.append(item)
    for thread in threads:
        thread.join()
    assert sorted(taken + queue.drain()) == list(range(2000))


A, B = Share(tenant="a"), Share(tenant="b")
NIGHTLY = Share("batch", "nightly")


@pytest.mark.parametrize("policy", ["fifo", "slo"])
def test_interactive_requests_go_before_batch_ones_whatever_their_objectives(policy):
    queue: WaitingQueue[str] = WaitingQueue(policy)
    queue.add("batch-soon", 1.0, NIGHTLY)
    queue.add("batch-none", None, NIGHTLY)
    queue.add("interactive-late", 500.0, A)
    queue.add("interactive-none", None, B)
    assert queue.drain() == ["interactive-late", "interactive-none", "batch-soon", "batch-none"]
    queue.add("batch", 1.0, NIGHTLY)
    queue.add("interactive", 500.0, A)
    assert queue.pop_if(lambda name: True) == "interactive"


def test_a_flooding_tenant_is_interleaved_with_another_of_its_class():
    queue: WaitingQueue[str] = WaitingQueue("fifo")
    for i in range(5):
        queue.add(f"a{i}", None, A)
    queue.add("b0", None, B)
    queue.add("b1", None, B)
    assert queue.drain() == ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]


def test_within_a_tenant_the_policy_orders_its_requests():
    queue: WaitingQueue[str] = WaitingQueue("slo")
    queue.add("a-late", 300.0, A)
    queue.add("a-soon", 100.0, A)
    queue.add("b-later-still", 900.0, B)
    assert queue.drain() == ["a-soon", "b-later-still", "a-late"]


def test_weights_set_each_tenants_part_of_the_requests_served():
    queue: WaitingQueue[str] = WaitingQueue("fifo")
    heavy = Share(tenant="heavy", weight=3.0)
    for i in range(40):
        queue.add(f"heavy{i}", None, heavy)
        queue.add(f"b{i}", None, B)
    served = [queue.pop_if(lambda name: True) for _ in range(20)]
    assert sum(name.startswith("heavy") for name in served) == 15


def test_pop_if_refusing_the_fair_head_takes_nothing():
    queue: WaitingQueue[str] = WaitingQueue("fifo")
    queue.add("a0", None, A)
    queue.add("a1", None, A)
    queue.add("b0", None, B)
    assert queue.pop_if(lambda name: True) == "a0"
    assert queue.pop_if(lambda name: name != "b0") is None  # b0 is next: a1 waits its turn
    assert len(queue) == 2 and queue.drain() == ["b0", "a1"]
