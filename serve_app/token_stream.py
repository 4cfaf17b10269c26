"""A text stream from the text group, consumed once to its end: the one loop behind chat
streaming and the pipeline's LLM stage.

The stream's first event is awaited like any call (ReplicaGroup.open_stream), so an error
before any output is still an HTTP status. After that, each event must come within the idle
timeout and before the deadline; each token is counted (time to first token, gaps between
tokens: serve_app/request_metrics.py); the StreamEnd's stages join the request's timing
(serve_app/calls.py) before it is rendered; a failure is rendered in-band, as the last event
(the HTTP status has already gone out). A stream left early (the client went away) or failed
has its replica's work cancelled. What each event becomes on the wire is the renderer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from deployments.core.call_protocol import StreamEnd, TextEvent, TokenDelta
from deployments.core.deadline import remaining
from deployments.core.errors import InternalFailure, ServeError, TimedOut
from deployments.core.generation import SamplingParams
from serve_app.request_metrics import TokenClock

if TYPE_CHECKING:  # its Ray imports stay out of what only calls it
    from serve_app.calls import ReplicaGroup

T = TypeVar("T", covariant=True)
R = TypeVar("R")


class Renderer(Protocol[T]):
    """What a route sends for each event of a text stream."""

    def token(self, delta: TokenDelta) -> T: ...

    def end(self, end: StreamEnd) -> T: ...

    def error(self, error: ServeError) -> T: ...


@dataclass
class TokenStream:
    group: ReplicaGroup
    first: TextEvent | None
    rest: Any  # the remaining events, with cancel() (serve_app/calls.py)
    deadline: float | None
    idle_timeout_s: float
    clock: TokenClock

    @classmethod
    async def open(cls, group: ReplicaGroup, messages: list[dict] | str,
                   params: SamplingParams, deadline: float | None, idle_timeout_s: float,
                   clock: TokenClock, alongside: bool = False) -> TokenStream:
        """The group's `stream` started, its first event arrived (or its error raised);
        `alongside`: one of several streams of the request (ReplicaGroup.call)."""
        first, rest = await group.open_stream("stream", messages, params, deadline=deadline,
                                              alongside=alongside)
        return cls(group, first, rest, deadline, idle_timeout_s, clock)

    async def relay(self, render: Renderer[R]) -> AsyncIterator[R]:
        """Each event, rendered: the tokens, then the end or an error."""
        event, over = self.first, False
        try:
            while event is not None and not isinstance(event, StreamEnd):
                self.clock.token()
                yield render.token(event)
                event = await next_item(self.rest, self.group, self.deadline,
                                        self.idle_timeout_s)
            if event is not None:  # the end: the replica's stream finishes right after it
                await next_item(self.rest, self.group, self.deadline, self.idle_timeout_s)
                over = True
                yield render.end(event)
            over = True
        except Exception as exc:
            yield render.error(in_band(exc))
        finally:
            if not over:
                self.rest.cancel()


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


def in_band(exc: Exception) -> ServeError:
    return exc if isinstance(exc, ServeError) else InternalFailure("the stream failed")
