"""Which version of a replica group takes a call: the group's own deployment, or its canary
(a group's `canary:` in the config) for `weight` of the calls, each drawn at random."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAIN, CANARY = "main", "canary"


@dataclass(frozen=True)
class Variant:
    """One deployment of a group: `name` is main or canary, `version` its settings' version."""

    name: str
    version: str
    handle: Any


class CanarySplit:
    """Sends `weight` of the calls to the canary and the rest to the main deployment; with no
    canary, every call to the main one. `draw` returns a float in [0, 1) (random.random)."""

    def __init__(self, main: Variant, canary: Variant | None = None, weight: float = 0.0,
                 draw: Callable[[], float] = random.random) -> None:
        if canary is not None and not 0.0 < weight < 1.0:
            raise ValueError(f"a canary's weight must be between 0 and 1, not {weight}")
        self.main, self.canary, self.weight, self.draw = main, canary, weight, draw

    def choose(self) -> Variant:
        if self.canary is not None and self.draw() < self.weight:
            return self.canary
        return self.main
