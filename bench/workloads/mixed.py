"""Several workloads at once, each request drawn with a weight per route.

    --mix chat=4,image-embedding=2,transcription=1,pipeline=1
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bench.workloads.base import RequestSpec, Workload


def parse_mix(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise ValueError(f"bad mix entry {part!r}; write ROUTE=WEIGHT") from None
        if value < 0:
            raise ValueError(f"bad mix entry {part!r}: weights must not be negative")
        weights[name.strip()] = value
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"bad mix {text!r}: give at least one positive weight")
    return weights


@dataclass
class MixedWorkload:
    parts: dict[str, tuple[float, Workload]]
    name: str = "mixed"

    def next_request(self, rng: random.Random) -> RequestSpec:
        names = list(self.parts)
        weights = [self.parts[n][0] for n in names]
        chosen = rng.choices(names, weights=weights)[0]
        return self.parts[chosen][1].next_request(rng)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name,
                "mix": {name: weight for name, (weight, _) in self.parts.items()},
                "parts": {name: workload.describe() for name, (_, workload) in self.parts.items()}}
