"""A request's deadline: an absolute wall-clock time that travels with the request.

The ingress sets it once (its default timeout, or sooner if the client asks with
X-Request-Timeout) and hands it to every stage; replicas on other processes or nodes compare it
with their own clock, so clocks are assumed in sync (NTP), as in any cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from deployments.core.errors import DeadlineExceeded

T = TypeVar("T")


def deadline_after(seconds: float) -> float:
    return time.time() + seconds


def remaining(deadline: float | None) -> float | None:
    """Seconds left, never below 0; None when there is no deadline."""
    return None if deadline is None else max(0.0, deadline - time.time())


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def check(deadline: float | None, what: str = "the request") -> None:
    """Raises DeadlineExceeded (a 504) once the deadline has passed."""
    if expired(deadline):
        raise DeadlineExceeded(what)


async def before(deadline: float | None, awaitable: Awaitable[T], what: str = "the request") -> T:
    """The awaitable's result, or DeadlineExceeded (the awaitable cancelled) once it passes."""
    try:
        return await asyncio.wait_for(awaitable, remaining(deadline))
    except TimeoutError:
        raise DeadlineExceeded(what) from None


async def items_before(deadline: float | None, items: AsyncIterator[T],
                       what: str = "the request") -> AsyncIterator[T]:
    """The items, each awaited until the deadline; DeadlineExceeded once it passes. Leaving
    early closes `items`."""
    try:
        while (item := await before(deadline, anext(items, _END), what)) is not _END:
            yield item
    finally:
        await items.aclose()


_END: object = object()
