"""One request's time at the ingress, and the Server-Timing header that shows it.

The front end measures each request from its arrival; every call to a replica group is added
with the stages its replica reported (deployments/core/timing.py). The header lists, in
milliseconds:

    ingress         the ingress's own work: parsing, checks, the cache, building the answer
                    (the request's time outside every replica call)
    GROUP-handle    Serve's router, its queue and the hops to the replica and back
    GROUP-queue     waiting in the replica's batcher while the model was busy
    GROUP-batch     waiting for the batch to close while the model was free
    GROUP-model     the model call the request's batch rode in
    GROUP-first-token, GROUP-decode   a text stream: the engine's queue and prefill; the rest
    GROUP-replica   the rest of the replica's work (decoding media, encoding the prompt)
    total           arrival to answer (on a stream's header: to its first token)

GROUP is text, vision or audio. Calls of one request that run side by side (the pipeline's
audio and image stages) overlap, so their entries together exceed their share of `total`;
of several calls to one group, the longest is shown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

Stages = list[tuple[str, float, float]]  # (name, epoch start, seconds)


@dataclass
class GroupCall:
    group: str
    start: float  # epoch seconds
    seconds: float
    stages: Stages = field(default_factory=list)


class RequestTiming:
    def __init__(self) -> None:
        self.start = time.time()
        self._clock = time.perf_counter()
        self.calls: list[GroupCall] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self._clock

    def add_call(self, call: GroupCall) -> GroupCall:
        self.calls.append(call)
        return call

    def entries(self) -> list[tuple[str, float]]:
        """(name, seconds) in the order of the header."""
        total = self.elapsed()
        entries = [("ingress", max(0.0, total - self._in_calls()))]
        for call in self._longest_per_group():
            if not call.stages:
                entries.append((call.group, call.seconds))
                continue
            in_replica = sum(seconds for _, _, seconds in call.stages)
            entries.append((f"{call.group}-handle", max(0.0, call.seconds - in_replica)))
            entries += [(f"{call.group}-{name}", seconds) for name, _, seconds in call.stages]
        entries.append(("total", total))
        return entries

    def header(self) -> str:
        return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.entries())

    def _longest_per_group(self) -> list[GroupCall]:
        longest: dict[str, GroupCall] = {}
        for call in self.calls:
            if call.group not in longest or call.seconds > longest[call.group].seconds:
                longest[call.group] = call
        return list(longest.values())

    def _in_calls(self) -> float:
        """Seconds covered by at least one call (the union of their intervals)."""
        covered, reach = 0.0, float("-inf")
        for call in sorted(self.calls, key=lambda c: c.start):
            end = call.start + call.seconds
            if end > reach:
                covered += end - max(call.start, reach)
                reach = end
        return covered


_current: ContextVar[RequestTiming | None] = ContextVar("mmserve_request_timing", default=None)


def current() -> RequestTiming | None:
    """The timing of the request being served, if it is being timed."""
    return _current.get()


@contextmanager
def timed_request(enabled: bool = True) -> Iterator[RequestTiming]:
    """A RequestTiming for the request served inside the block; current there only if
    `enabled` (replica calls are then timed), measured either way."""
    request = RequestTiming()
    token = _current.set(request if enabled else None)
    try:
        yield request
    finally:
        _current.reset(token)


def parse_header(value: str) -> dict[str, float]:
    """{name: milliseconds} from a Server-Timing header this app wrote."""
    entries = {}
    for entry in value.split(","):
        name, _, duration = entry.strip().partition(";dur=")
        entries[name] = float(duration)
    return entries
