"""The next item of a started stream, bounded by the request's deadline and an idle timeout.

A stream's first item is awaited like any call (ReplicaGroup.open_stream); after that, each
item must come within `idle_timeout_s` and before the deadline, or the stream ends with an error
the caller sends in-band (the HTTP status has already gone out).
"""

from __future__ import annotations

import asyncio
from typing import Any

from deployments.core.deadline import remaining
from deployments.core.errors import TimedOut
from serve_app.calls import ReplicaGroup


async def next_item(rest: Any, group: ReplicaGroup, deadline: float | None,
                    idle_timeout_s: float) -> Any:
    """The stream's next item, or None at its end; a ServeError when it stalls or fails."""
    left = remaining(deadline)
    wait_s = idle_timeout_s if left is None else min(idle_timeout_s, left)
    try:
        return await asyncio.wait_for(anext(rest, None), wait_s)
    except TimeoutError:
        if left is not None and left <= idle_timeout_s:
            raise TimedOut("the stream did not finish before its deadline") from None
        raise TimedOut(f"no token for {idle_timeout_s:g} s; the stream was ended") from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise group.error(exc) from None
