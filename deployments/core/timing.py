"""Where one request's time went: named stages with their wall-clock start and length.

A timeline is current for the code serving one request (a context variable, so the asyncio
tasks a request starts record into it too). The replica fills one while it serves a call
(queue wait, batch wait, model: deployments/replicas/batcher.py) and hands it back in its
reply's `stages` (deployments/core/call_protocol.py, deployments/replicas/timed_calls.py); the
ingress folds each replica's stages into its own (under the group's name) and answers with a
Server-Timing header (serve_app/request_timing.py).

Starts are epoch seconds (time.time()), so stages measured in different processes of one
machine line up; lengths are measured with the monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Stage:
    name: str
    start: float  # epoch seconds
    seconds: float


@dataclass
class Timeline:
    stages: dict[str, Stage] = field(default_factory=dict)

    def record(self, name: str, start: float, seconds: float) -> None:
        """Sets the stage `name`; a later record of the same name replaces it (the last item
        of a request to leave its batch is the one the request waited for)."""
        self.stages[name] = Stage(name, start, max(0.0, seconds))

    def seconds(self) -> float:
        return sum(stage.seconds for stage in self.stages.values())

    def as_wire(self) -> list[tuple[str, float, float]]:
        """Plain tuples, to travel back from a replica with its result."""
        return [(s.name, s.start, s.seconds) for s in self.stages.values()]


_current: ContextVar[Timeline | None] = ContextVar("mmserve_timeline", default=None)


def record(name: str, start: float, seconds: float) -> None:
    """Records a stage of the request being served, if anyone is collecting its timeline."""
    timeline = _current.get()
    if timeline is not None:
        timeline.record(name, start, seconds)


@contextmanager
def using(timeline: Timeline) -> Iterator[Timeline]:
    """`timeline` is current inside the block, and in the tasks started from it."""
    token = _current.set(timeline)
    try:
        yield timeline
    finally:
        _current.reset(token)


def epoch(monotonic_s: float) -> float:
    """A time.monotonic() reading as epoch seconds."""
    return monotonic_s + (time.time() - time.monotonic())
