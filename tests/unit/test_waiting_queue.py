"""The order a text engine serves its waiting requests in: by arrival under "fifo"; under "slo"
the earliest objective first, requests without one after all that have one, ties by arrival."""

from __future__ import annotations

import threading

import pytest

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
