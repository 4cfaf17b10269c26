"""GroupLoad: the drain rate and the Retry-After it gives."""

from __future__ import annotations

from serve_app.group_load import MAX_RETRY_AFTER_S, MIN_RETRY_AFTER_S, GroupLoad


def finish(load: GroupLoad, count: int) -> None:
    for _ in range(count):
        load.started()
        load.finished()


def test_retry_after_is_what_is_in_flight_over_the_drain_rate():
    load = GroupLoad(window_s=10)
    finish(load, 5)  # 0.5 per second
    for _ in range(6):
        load.started()
    assert load.drain_rate() == 0.5
    assert load.retry_after_s() == 12


def test_retry_after_stays_within_bounds():
    idle = GroupLoad()
    assert idle.retry_after_s() == MIN_RETRY_AFTER_S
    fast = GroupLoad(window_s=10)
    finish(fast, 1000)
    fast.started()
    assert fast.retry_after_s() == MIN_RETRY_AFTER_S
    slow = GroupLoad(window_s=10)
    finish(slow, 1)
    for _ in range(500):
        slow.started()
    assert slow.retry_after_s() == MAX_RETRY_AFTER_S


def test_a_stalled_group_asks_for_one_window():
    stalled = GroupLoad(window_s=10)
    stalled.started()
    assert stalled.retry_after_s() == 10


def test_overloaded_only_after_a_rejection():
    load = GroupLoad()
    assert not load.overloaded()
    load.rejected()
    assert load.overloaded()
