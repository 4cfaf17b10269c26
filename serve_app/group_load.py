"""What the ingress sees of each replica group's load: requests in flight, how fast they drain,
and when the group last pushed back. It turns backpressure into a Retry-After a client can use.

Ray's own `BackpressureConfig` sends a fixed Retry-After. Here it is the time the group needs
to drain what the ingress has in flight to it at the rate it completed requests over the last
window, so a client backs off longer from a slow group (Whisper) than from a fast one (CLIP).
"""

from __future__ import annotations

import math
import time
from collections import deque

DRAIN_WINDOW_S = 10.0
MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60
OVERLOADED_FOR_S = 5.0  # how long after a rejection /readyz still says "overloaded"


class GroupLoad:
    def __init__(self, window_s: float = DRAIN_WINDOW_S) -> None:
        self.window_s = window_s
        self.in_flight = 0
        self._completions: deque[float] = deque()
        self._last_rejection = -math.inf

    def started(self) -> None:
        self.in_flight += 1

    def finished(self) -> None:
        self.in_flight -= 1
        self._completions.append(time.monotonic())

    def rejected(self) -> None:
        self._last_rejection = time.monotonic()

    def drain_rate(self) -> float:
        """Requests completed per second over the window."""
        cutoff = time.monotonic() - self.window_s
        while self._completions and self._completions[0] < cutoff:
            self._completions.popleft()
        return len(self._completions) / self.window_s

    def retry_after_s(self) -> int:
        """Whole seconds for what is in flight to drain, within [1, 60]."""
        rate = self.drain_rate()
        if rate <= 0:  # nothing finished for a whole window: come back after one
            return math.ceil(self.window_s) if self.in_flight else MIN_RETRY_AFTER_S
        seconds = math.ceil(max(self.in_flight, 1) / rate)
        return max(MIN_RETRY_AFTER_S, min(MAX_RETRY_AFTER_S, seconds))

    def overloaded(self) -> bool:
        return time.monotonic() - self._last_rejection < OVERLOADED_FOR_S
