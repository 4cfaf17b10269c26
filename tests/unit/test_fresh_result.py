"""/readyz's shared check: one in flight whatever the number of callers, and a result reused
for at most its maximum age, counted on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.fresh_result import FreshResult
from tests.unit.fake_clock import FakeClock


class GatedCheck:
    """A check that answers its call number once released; counts its calls."""

    def __init__(self, clock: FakeClock | None = None, takes_s: float = 0.0) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.clock, self.takes_s = clock, takes_s

    async def __call__(self) -> int:
        self.calls += 1
        call = self.calls
        await self.release.wait()
        if self.clock is not None:
            self.clock.now += self.takes_s
        return call


def test_concurrent_callers_share_the_one_check_in_flight():
    async def scenario() -> tuple[list[int], int]:
        check = GatedCheck()
        fresh = FreshResult(check, max_age_s=1.0, clock=FakeClock(100.0))
        callers = [asyncio.create_task(fresh.get()) for _ in range(50)]
        await asyncio.sleep(0)
        check.release.set()
        return await asyncio.gather(*callers), check.calls

    results, calls = asyncio.run(scenario())
    assert calls == 1
    assert results == [1] * 50


def test_a_result_is_reused_up_to_its_maximum_age_then_checked_again():
    async def scenario() -> list[int]:
        clock = FakeClock(100.0)
        check = GatedCheck()
        check.release.set()
        fresh = FreshResult(check, max_age_s=1.0, clock=clock)
        seen = [await fresh.get()]
        for step in (0.5, 0.5, 0.01, 0.3):
            clock.now += step
            seen.append(await fresh.get())
        return seen

    # checked at 100.0; reused at 100.5 and 101.0; at 101.01 it is too old: checked again
    assert asyncio.run(scenario()) == [1, 1, 1, 2, 2]


def test_the_age_of_a_result_counts_from_when_its_check_began():
    async def scenario() -> list[int]:
        clock = FakeClock(100.0)
        check = GatedCheck(clock, takes_s=0.75)
        check.release.set()
        fresh = FreshResult(check, max_age_s=1.0, clock=clock)
        seen = [await fresh.get()]  # began at 100.0, answered at 100.75
        clock.now += 0.2
        seen.append(await fresh.get())  # 0.95 s after it began
        clock.now += 0.1
        seen.append(await fresh.get())  # 1.05 s: a new check
        return seen

    assert asyncio.run(scenario()) == [1, 1, 2]


def test_a_failed_check_reaches_every_waiter_and_is_not_kept():
    async def scenario() -> tuple[list[object], int]:
        calls = 0

        async def failing_once() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            if calls == 1:
                raise RuntimeError("replica call failed")
            return "ready"

        fresh = FreshResult(failing_once, max_age_s=1.0, clock=FakeClock(100.0))
        first = await asyncio.gather(fresh.get(), fresh.get(), return_exceptions=True)
        return [*first, await fresh.get()], calls

    results, calls = asyncio.run(scenario())
    assert [type(r) for r in results[:2]] == [RuntimeError, RuntimeError]
    assert results[2] == "ready" and calls == 2


def test_a_caller_that_gives_up_leaves_the_check_to_the_others():
    async def scenario() -> tuple[int, int]:
        check = GatedCheck()
        fresh = FreshResult(check, max_age_s=1.0, clock=FakeClock(100.0))
        leaving = asyncio.create_task(fresh.get())
        staying = asyncio.create_task(fresh.get())
        await asyncio.sleep(0)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        check.release.set()
        return await staying, check.calls

    assert asyncio.run(scenario()) == (1, 1)
