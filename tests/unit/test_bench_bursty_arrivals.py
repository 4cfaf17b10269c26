"""The bursty open loop: bursts at a multiple of the mean rate on a fixed schedule, the rate
between them lowered so the mean stays the asked one; seeded traces are reproducible."""

from __future__ import annotations

import random

import pytest

from bench.arrivals import BurstSchedule, arrival_times, bursty_arrival_times
from bench.load import LoadSpec, client_plans, open_loop_arrivals


def rate_in(times: list[float], keep) -> float:
    """Arrivals per second over the seconds of [0, end) that `keep` selects, on a 0.1 s grid."""
    end = int(max(times)) + 1
    seconds = sum(keep(t / 10) for t in range(end * 10)) / 10
    return sum(keep(t) for t in times) / seconds


def test_the_base_rate_makes_up_for_the_burst():
    schedule = BurstSchedule(2.0)  # defaults: 10 s at 3x every 60 s
    assert schedule.burst_rate == pytest.approx(6.0)
    assert schedule.base_rate == pytest.approx(1.2)  # (60 - 30) / (60 - 10) of the mean
    assert (schedule.burst_rate * 10 + schedule.base_rate * 50) / 60 == pytest.approx(2.0)


def test_time_of_inverts_the_cumulative_rate_from_the_phase():
    schedule = BurstSchedule(2.0, phase_s=5.0)
    assert schedule.time_of(6.0) == pytest.approx(5.0)  # 5 s at 1.2/s before the first burst
    assert schedule.time_of(6.0 + 60.0) == pytest.approx(15.0)  # the burst: 10 s at 6/s
    assert schedule.time_of(66.0 + 60.0) == pytest.approx(65.0)  # 50 s at 1.2/s
    assert schedule.time_of(126.0 + 30.0) == pytest.approx(70.0)  # half the next burst
    assert [schedule.rate_at(t) for t in (4.9, 5.0, 14.9, 15.0, 65.0)] == pytest.approx(
        [1.2, 6.0, 6.0, 1.2, 6.0])


def test_a_seeded_trace_keeps_the_mean_and_bursts_at_three_times_it():
    schedule = BurstSchedule(10.0, phase_s=5.0)
    times = bursty_arrival_times(schedule, random.Random(11), until_s=5.0 + 20 * 60.0)
    measured = [t for t in times if t >= 5.0]
    assert len(measured) / (20 * 60.0) == pytest.approx(10.0, rel=0.03)
    assert rate_in(measured, lambda t: t >= 5.0 and schedule.in_burst(t)) == pytest.approx(
        30.0, rel=0.05)
    assert rate_in(measured, lambda t: t >= 5.0 and not schedule.in_burst(t)) == pytest.approx(
        6.0, rel=0.05)


def test_the_same_seed_gives_the_same_trace():
    schedule = BurstSchedule(4.0, period_s=30.0, burst_s=5.0, factor=2.0)
    first = bursty_arrival_times(schedule, random.Random(3), until_s=120.0)
    assert first == bursty_arrival_times(schedule, random.Random(3), until_s=120.0)
    assert first != bursty_arrival_times(schedule, random.Random(4), until_s=120.0)
    assert first == sorted(first) and 0 < first[0] and first[-1] < 120.0


def test_the_largest_factor_leaves_nothing_between_bursts():
    schedule = BurstSchedule(5.0, period_s=30.0, burst_s=10.0, factor=3.0)
    assert schedule.base_rate == 0.0
    times = bursty_arrival_times(schedule, random.Random(2), until_s=300.0)
    assert all(schedule.in_burst(t) for t in times)
    assert len(times) / 300.0 == pytest.approx(5.0, rel=0.1)


@pytest.mark.parametrize("options", [{"factor": 7.0}, {"factor": 0.5}, {"burst_s": 60.0},
                                     {"period_s": 0.0}])
def test_a_schedule_that_cannot_keep_the_mean_is_refused(options):
    with pytest.raises(ValueError):
        BurstSchedule(1.0, **options)


def test_the_loads_bursts_begin_when_measuring_starts():
    spec = LoadSpec(concurrency=0, rate=10.0, arrivals="bursty", duration_s=60.0,
                    warmup_s=5.0, seed=1)
    times = open_loop_arrivals(spec)
    burst = sum(5.0 <= t < 15.0 for t in times)
    after = sum(15.0 <= t < 65.0 for t in times)
    assert burst == pytest.approx(300, rel=0.15)  # 10 s at 30/s
    assert after == pytest.approx(300, rel=0.15)  # 50 s at 6/s
    assert sorted(t for p in client_plans(spec, 3, 0.0) for t in p.arrivals) == times
    assert spec.describe()["burst_base_rate"] == pytest.approx(6.0)


def test_count_bounded_bursty_arrivals_count_only_after_the_warmup():
    times = bursty_arrival_times(BurstSchedule(5.0, phase_s=3.0), random.Random(1), count=40,
                                 count_after_s=3.0)
    assert sum(t >= 3.0 for t in times) == 40


def test_steady_arrivals_draw_what_they_drew_before_bursts_existed():
    rng = random.Random(5)
    earlier, now = [], 0.0
    while (now := now + rng.gammavariate(0.5, 1.0 / (4.0 * 0.5))) < 50.0:
        earlier.append(now)
    assert arrival_times(4.0, random.Random(5), burstiness=0.5, until_s=50.0) == earlier


def test_unknown_arrivals_are_refused():
    with pytest.raises(ValueError, match="unknown arrivals"):
        open_loop_arrivals(LoadSpec(rate=1.0, arrivals="sine"))
