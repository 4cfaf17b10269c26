"""next_item: a started stream's items, bounded by an idle timeout and the deadline."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError

from deployments.core.deadline import deadline_after
from deployments.core.errors import ServeError
from serve_app.calls import ReplicaGroup
from serve_app.http_errors import status_of
from serve_app.token_stream import next_item


async def tokens(*delays: float):
    for index, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield index


async def dies_after_one():
    yield 0
    raise ActorDiedError()


GROUP = ReplicaGroup("text", handle=None)


def items(stream, deadline=None, idle_s=1.0):
    async def collect():
        got = []
        while (item := await next_item(stream, GROUP, deadline, idle_s)) is not None:
            got.append(item)
        return got
    return asyncio.run(collect())


def test_items_then_none_at_the_end():
    assert items(tokens(0, 0, 0)) == [0, 1, 2]


def test_a_stalled_stream_ends_with_a_504_naming_the_idle_timeout():
    with pytest.raises(ServeError, match="no token for 0.1 s") as caught:
        items(tokens(0, 5), idle_s=0.1)
    assert status_of(caught.value) == 504


def test_the_deadline_bounds_a_stream_that_keeps_producing():
    with pytest.raises(ServeError, match="deadline"):
        items(tokens(*[0.05] * 100), deadline=deadline_after(0.2), idle_s=1.0)


def test_a_replica_dying_mid_stream_is_a_503():
    with pytest.raises(ServeError) as caught:
        items(dies_after_one())
    assert status_of(caught.value) == 503 and caught.value.retry_after_s
