"""A replica method that can tell its caller where the call's time went.

Called with `timed=True` (the ingress does, serve_app/calls.py), the method collects its
stages on a timeline (queue, batch and model from deployments/replicas/batcher.py; first-token and
decode from the text replica) and returns `Timed(value, stages)`; a streaming method yields its
items, then one `Timed(None, stages)`. "replica" is the rest of the call: decoding inputs,
checks, encoding the prompt. Called without it (tests, the bench's in-process baseline), the
method is unchanged.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from deployments.core import timing
from deployments.core.timing import Timed


def reports_timing(method: Callable) -> Callable:
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, *args: Any, timed: bool = False, **kwargs: Any):
            if not timed:
                async for item in method(self, *args, **kwargs):
                    yield item
                return
            timeline, items = timing.Timeline(), method(self, *args, **kwargs)
            started, clock = time.time(), time.perf_counter()
            try:
                while True:
                    # Current only while the method runs: each item may be asked for from
                    # another task (the caller's), whose context is not the first one's.
                    with timing.using(timeline):
                        try:
                            item = await anext(items)
                        except StopAsyncIteration:
                            break
                    yield item
            finally:
                await items.aclose()
            yield Timed(None, _with_rest(timeline, started, time.perf_counter() - clock))
        return stream

    @functools.wraps(method)
    async def call(self: Any, *args: Any, timed: bool = False, **kwargs: Any) -> Any:
        if not timed:
            return await method(self, *args, **kwargs)
        timeline = timing.Timeline()
        started, clock = time.time(), time.perf_counter()
        with timing.using(timeline):
            value = await method(self, *args, **kwargs)
        return Timed(value, _with_rest(timeline, started, time.perf_counter() - clock))
    return call


def _with_rest(timeline: timing.Timeline, started: float, seconds: float
               ) -> list[tuple[str, float, float]]:
    timeline.record("replica", started, seconds - timeline.seconds())
    return timeline.as_wire()
