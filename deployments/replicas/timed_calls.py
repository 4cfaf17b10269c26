"""A replica method that can tell its caller where the call's time went.

Every replica method takes a CallContext as its argument `ctx`
(deployments/core/call_protocol.py) and answers with a Reply. When the context asks for timing
(the ingress does while it times the request, serve_app/calls.py), the method collects its
stages on a timeline (queue, batch and model from deployments/replicas/batcher.py; first-token
and decode from the text replica) and its reply carries them in `stages`; a streaming method's
StreamEnd carries them, sent once the stream's work is over. "replica" is the rest of the call:
decoding inputs, checks, encoding the prompt. Otherwise the method is unchanged and `stages`
stays empty.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from deployments.core import timing
from deployments.core.call_protocol import NO_CONTEXT, CallContext, Reply, Stages, StreamEnd


def reports_timing(method: Callable) -> Callable:
    context_of = _context_finder(method)
    if inspect.isasyncgenfunction(method):
        @functools.wraps(method)
        async def stream(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            items = method(self, *args, **kwargs)
            if not context_of(self, args, kwargs).timed:
                async for item in items:
                    yield item
                return
            async for item in _timed_stream(items):
                yield item
        return stream

    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Reply:
        if not context_of(self, args, kwargs).timed:
            return await method(self, *args, **kwargs)
        timeline = timing.Timeline()
        started, clock = time.time(), time.perf_counter()
        with timing.using(timeline):
            reply = await method(self, *args, **kwargs)
        reply.stages = _with_rest(timeline, started, time.perf_counter() - clock)
        return reply
    return call


async def _timed_stream(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The stream's items; its StreamEnd held back until the stream's work is over, then sent
    with the stages."""
    timeline, end = timing.Timeline(), None
    started, clock = time.time(), time.perf_counter()
    try:
        while True:
            # Current only while the method runs: each item may be asked for from another
            # task (the caller's), whose context is not the first one's.
            with timing.using(timeline):
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
            if isinstance(item, StreamEnd):
                end = item
            else:
                yield item
    finally:
        await items.aclose()
    if end is not None:
        end.stages = _with_rest(timeline, started, time.perf_counter() - clock)
        yield end


def _context_finder(method: Callable) -> Callable[[Any, tuple, dict], CallContext]:
    """How to find the call's context among a call's arguments: `ctx`, by name or place."""
    names = list(inspect.signature(method).parameters)
    if "ctx" not in names:
        raise TypeError(f"{method.__qualname__} takes no ctx: CallContext argument")
    place = names.index("ctx") - 1  # after self

    def context_of(self: Any, args: tuple, kwargs: dict) -> CallContext:
        if "ctx" in kwargs:
            return kwargs["ctx"]
        return args[place] if len(args) > place else NO_CONTEXT
    return context_of


def _with_rest(timeline: timing.Timeline, started: float, seconds: float) -> Stages:
    timeline.record("replica", started, seconds - timeline.seconds())
    return timeline.as_wire()
