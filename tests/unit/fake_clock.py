"""A clock that stands still until the test moves it: hand it as a wall or monotonic clock and
set `now` (or add to it) where time should pass."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
