"""How a suite checks one configuration against another in a round: a ratio, "at least N times
the other's", "at most the other's". The round's booleans become verdicts across rounds
(bench/rounds.py: met only when every round meets it). Standard library only, so suites' pure
parts import it without Ray."""

from __future__ import annotations


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b; None when either is missing or b is 0."""
    return None if a is None or not b else a / b


def at_least(value: float | None, other: float | None, factor: float) -> bool:
    """`value` is at least `factor` times `other`, and above 0: two runs that both served
    nothing do not meet a goal of serving more."""
    if value is None or other is None:
        return False
    return value > 0 and value >= factor * other


def at_most(value: float | None, other: float | None) -> bool:
    """`value` (a latency) is at most `other`'s. No `other` (the other served none of these
    requests) is beaten by any value; no `value` meets nothing."""
    if value is None:
        return False
    return other is None or value <= other
