"""Calling deployment handles with a deadline, mapping failures to client-facing errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from serve_app.errors import ServeError


def as_serve_error(exc: BaseException, what: str) -> ServeError:
    """The client-facing error behind a failed handle call."""
    if isinstance(exc, ServeError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ServeError):
        return ServeError(cause.status, cause.message, cause.param)
    if isinstance(exc, BackPressureError):
        return ServeError(503, f"the {what} deployment is overloaded; retry later")
    if isinstance(exc, DeploymentUnavailableError):
        return ServeError(503, f"the {what} deployment is unavailable")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ServeError(504, f"the {what} deployment did not answer in time")
    if isinstance(exc, RayTaskError):
        return ServeError(500, f"the {what} deployment failed: {type(cause).__name__}")
    return ServeError(500, f"the {what} deployment failed: {type(exc).__name__}")


async def call(response: Any, what: str, timeout_s: float) -> Any:
    """Awaits a DeploymentResponse; cancels it on timeout."""
    try:
        return await asyncio.wait_for(_await(response), timeout_s)
    except asyncio.CancelledError:
        response.cancel()
        raise
    except BaseException as exc:
        if isinstance(exc, asyncio.TimeoutError):
            response.cancel()
        raise as_serve_error(exc, what) from None


async def _await(response: Any) -> Any:
    return await response


async def first_and_rest(stream: Any, what: str, timeout_s: float) -> tuple[Any, AsyncIterator]:
    """Waits for a stream's first item, so errors before any output become HTTP statuses."""
    iterator = stream.__aiter__()
    try:
        first = await asyncio.wait_for(iterator.__anext__(), timeout_s)
    except StopAsyncIteration:
        first = None
    except BaseException as exc:
        stream.cancel()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise as_serve_error(exc, what) from None
    return first, iterator
