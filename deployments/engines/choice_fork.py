"""A request's `n` choices, decoded as n rows forked from one prefill: each choice's seed, and
the gathering of their outcomes into the request's one outcome (plain Python; the rows
themselves are Sequence.fork's)."""

from __future__ import annotations

from collections.abc import Callable

from deployments.core.generation import Completion

Outcome = Completion | Exception


def choice_seed(seed: int | None, index: int) -> int | None:
    """Choice `index`'s seed: the request's plus the index, as vLLM seeds its n children, so a
    seeded request gives the same choices on either engine's rules."""
    return None if seed is None else seed + index


class ChoiceGroup:
    """Collects the outcomes of one request's choices, each reported once by its row, and
    hands the request its outcome: the first choice's Completion carrying the others, once
    every choice has finished; or the first error, at once (later outcomes are ignored)."""

    def __init__(self, n: int, on_finish: Callable[[Outcome], None]) -> None:
        self.on_finish = on_finish
        self.outcomes: list[Completion | None] = [None] * n
        self.done = False

    def finisher(self, index: int) -> Callable[[Outcome], None]:
        return lambda outcome: self._finished(index, outcome)

    def _finished(self, index: int, outcome: Outcome) -> None:
        if self.done:
            return
        if isinstance(outcome, Exception):
            self.done = True
            self.on_finish(outcome)
            return
        self.outcomes[index] = outcome
        if all(choice is not None for choice in self.outcomes):
            self.done = True
            first, *others = self.outcomes
            first.other_choices = others
            self.on_finish(first)
