"""TokenStream.relay, the one loop behind chat streaming and the pipeline's LLM stage: tokens
counted and rendered, the end rendered once the stream is over, a failure rendered in-band,
and the replica's work cancelled whenever the stream did not run to its end."""

from __future__ import annotations

import asyncio

from ray.exceptions import ActorDiedError

from deployments.core.call_protocol import StreamEnd, TokenDelta
from deployments.core.errors import ServeError
from serve_app.calls import ReplicaGroup
from serve_app.http_errors import status_of
from serve_app.token_stream import TokenStream

END = StreamEnd(5, 2, "length")
STALL = object()


class Rest:
    """The events after the first, as ReplicaGroup.open_stream hands them on."""

    def __init__(self, *events) -> None:
        self.events = list(events)
        self.cancelled = False

    def __aiter__(self) -> Rest:
        return self

    async def __anext__(self):
        if not self.events:
            raise StopAsyncIteration
        event = self.events.pop(0)
        if isinstance(event, BaseException):
            raise event
        if event is STALL:
            await asyncio.Event().wait()  # never set: the replica sends nothing more
        return event

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    def __init__(self) -> None:
        self.tokens = 0

    def token(self) -> None:
        self.tokens += 1


class Render:
    def token(self, delta: TokenDelta):
        return ("token", delta.text)

    def end(self, end: StreamEnd):
        return ("end", end.finish_reason)

    def error(self, error: ServeError):
        return ("error", status_of(error))


def relay(first, rest: Rest, clock: Clock, idle_s: float = 5.0, take: int | None = None):
    stream = TokenStream(ReplicaGroup("text", handle=None), first, rest, None, idle_s, clock)

    async def collect():
        got, events = [], stream.relay(Render())
        async for event in events:
            got.append(event)
            if take is not None and len(got) == take:
                await events.aclose()  # the client went away
                break
        return got
    return asyncio.run(collect())


def test_tokens_are_counted_and_rendered_then_the_end_and_nothing_is_cancelled():
    rest, clock = Rest(TokenDelta("b"), END), Clock()
    assert relay(TokenDelta("a"), rest, clock) == [("token", "a"), ("token", "b"),
                                                  ("end", "length")]
    assert clock.tokens == 2 and not rest.cancelled


def test_a_stream_whose_first_event_is_its_end_renders_only_the_end():
    rest, clock = Rest(), Clock()
    assert relay(END, rest, clock) == [("end", "length")]
    assert clock.tokens == 0 and not rest.cancelled


def test_a_replica_dying_mid_stream_is_an_in_band_503_and_the_stream_is_cancelled():
    rest = Rest(ActorDiedError())
    assert relay(TokenDelta("a"), rest, Clock()) == [("token", "a"), ("error", 503)]
    assert rest.cancelled


def test_a_stall_past_the_idle_timeout_is_an_in_band_504():
    rest = Rest(STALL, END)
    assert relay(TokenDelta("a"), rest, Clock(), idle_s=0.05) == [("token", "a"),
                                                                 ("error", 504)]
    assert rest.cancelled


def test_a_client_that_leaves_cancels_the_replicas_work():
    rest = Rest(TokenDelta("b"), TokenDelta("c"), END)
    assert relay(TokenDelta("a"), rest, Clock(), take=2) == [("token", "a"), ("token", "b")]
    assert rest.cancelled
