"""When open-loop requests are sent: arrivals at one rate, or at a rate that bursts on a schedule.

`arrival_times`: gaps drawn at one rate, gamma-distributed (as vLLM's `--burstiness`): shape
k = burstiness, mean gap 1/rate. k = 1 is Poisson; k < 1 is burstier; k > 1 is more regular.

`bursty_arrival_times`: the same draws, at a rate that changes on a fixed schedule
(`BurstSchedule`): every `period_s` seconds, a burst of `burst_s` seconds at `factor` times the
mean rate, then the base rate for the rest of the period. The mean stays the asked rate: the
base rate is lowered to make up for the burst, base = rate * (period - factor * burst) /
(period - burst); the defaults (10 s at 3x every 60 s) give a base of 0.6x. A period, burst
first, begins at `phase_s` (the load puts it at the warm-up's end, so the measured window opens
with a burst) and every `period_s` after; the measured mean is the rate over whole periods.
The draws are mapped from a unit-rate process through the inverse of the schedule's cumulative
rate (time rescaling), so with burstiness 1 the arrivals are a Poisson process whose rate is
the schedule's, exactly, and the same seed gives the same times.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BurstSchedule:
    rate: float  # the mean, requests/s
    period_s: float = 60.0
    burst_s: float = 10.0
    factor: float = 3.0  # the burst's rate over the mean
    phase_s: float = 0.0  # a period, burst first, begins here

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.period_s <= 0 or self.burst_s <= 0:
            raise ValueError("rate, burst period and burst length must be positive")
        if self.burst_s >= self.period_s:
            raise ValueError("a burst must be shorter than its period")
        if self.factor < 1 or self.factor * self.burst_s > self.period_s:
            raise ValueError(f"a burst of {self.burst_s:g} s at {self.factor:g}x cannot keep "
                             f"the mean over {self.period_s:g} s: the factor must lie in "
                             f"1..{self.period_s / self.burst_s:g}")

    @property
    def burst_rate(self) -> float:
        return self.factor * self.rate

    @property
    def base_rate(self) -> float:
        return self.rate * (self.period_s - self.factor * self.burst_s) / (
            self.period_s - self.burst_s)

    def rate_at(self, t: float) -> float:
        return self.burst_rate if self.in_burst(t) else self.base_rate

    def in_burst(self, t: float) -> bool:
        return self._into_period(t) < self.burst_s

    def time_of(self, expected: float) -> float:
        """The time by which `expected` arrivals are due, counted from time 0: the inverse of
        the cumulative rate."""
        return self._uncumulate(expected + self._cumulative(-self.phase_s)) + self.phase_s

    def _into_period(self, t: float) -> float:
        return (t - self.phase_s) % self.period_s

    def _cumulative(self, x: float) -> float:
        """Arrivals due from a period's start to `x` seconds after it (negative: before)."""
        periods = math.floor(x / self.period_s)
        into = x - periods * self.period_s
        in_burst = min(into, self.burst_s)
        return (periods * self.rate * self.period_s + self.burst_rate * in_burst
                + self.base_rate * (into - in_burst))

    def _uncumulate(self, due: float) -> float:
        per_period = self.rate * self.period_s
        periods = math.floor(due / per_period)
        rest = due - periods * per_period
        in_burst = self.burst_rate * self.burst_s
        after_burst = max(0.0, rest - in_burst)
        into = min(rest, in_burst) / self.burst_rate + (
            after_burst / self.base_rate if self.base_rate > 0 else 0.0)
        return periods * self.period_s + into


def arrival_times(rate: float, rng: random.Random, burstiness: float = 1.0,
                  until_s: float | None = None, count: int | None = None,
                  count_after_s: float = 0.0) -> list[float]:
    """Send times in seconds from the start, until `until_s` or until `count` of them fall at
    or after `count_after_s` (the warm-up)."""
    if rate <= 0:
        raise ValueError("rate and burstiness must be positive")
    _check_bounds(burstiness, until_s, count)
    scale = 1.0 / (rate * burstiness)
    gaps = (rng.gammavariate(burstiness, scale) for _ in itertools.count())
    return _take(itertools.accumulate(gaps), until_s, count, count_after_s)


def bursty_arrival_times(schedule: BurstSchedule, rng: random.Random, burstiness: float = 1.0,
                         until_s: float | None = None, count: int | None = None,
                         count_after_s: float = 0.0) -> list[float]:
    """As `arrival_times`, at the rate of `schedule`."""
    _check_bounds(burstiness, until_s, count)
    unit_gaps = (rng.gammavariate(burstiness, 1.0 / burstiness) for _ in itertools.count())
    due = itertools.accumulate(unit_gaps)
    return _take((schedule.time_of(expected) for expected in due), until_s, count,
                 count_after_s)


def _check_bounds(burstiness: float, until_s: float | None, count: int | None) -> None:
    if burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    if until_s is None and count is None:
        raise ValueError("give until_s or count")


def _take(times: Iterable[float], until_s: float | None, count: int | None,
          count_after_s: float) -> list[float]:
    taken, counted = [], 0
    for now in times:
        if until_s is not None and now >= until_s:
            break
        taken.append(now)
        counted += now >= count_after_s
        if count is not None and counted >= count:
            break
    return taken


def split_round_robin(times: list[float], parts: int) -> list[list[float]]:
    return [times[i::parts] for i in range(parts)]
