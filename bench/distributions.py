"""Length distributions for prompts and outputs, written the way a command line gives them.

    64               always 64 (same as fixed:64)
    fixed:64
    uniform:32,128   integers from 32 to 128, both included
    normal:96,24     mean 96, standard deviation 24
    lognormal:64,0.5 median 64, sigma 0.5 (a long right tail, like real chat traffic)
    choice:16,64,256 one of the values, equally likely

Every draw is rounded and clipped to at least 1; draws come from the caller's seeded RNG.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_ARITY = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}


@dataclass(frozen=True)
class Distribution:
    kind: str
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Distribution:
        kind, _, rest = text.strip().partition(":")
        if not rest:
            kind, rest = "fixed", kind
        try:
            params = tuple(float(part) for part in rest.split(","))
        except ValueError:
            raise ValueError(f"bad distribution {text!r}: parameters must be numbers") from None
        if kind == "choice" and params:
            return cls(kind, params)
        if _ARITY.get(kind) != len(params):
            raise ValueError(f"bad distribution {text!r}; use N, fixed:N, uniform:LO,HI, "
                             "normal:MEAN,STD, lognormal:MEDIAN,SIGMA or choice:A,B,...")
        if kind == "uniform" and params[0] > params[1]:
            raise ValueError(f"bad distribution {text!r}: LO must not exceed HI")
        return cls(kind, params)

    def sample(self, rng: random.Random) -> int:
        p = self.params
        if self.kind == "fixed":
            value = p[0]
        elif self.kind == "uniform":
            value = rng.randint(int(p[0]), int(p[1]))
        elif self.kind == "normal":
            value = rng.gauss(p[0], p[1])
        elif self.kind == "lognormal":
            value = rng.lognormvariate(math.log(p[0]), p[1])
        else:
            value = rng.choice(p)
        return max(1, round(value))

    def __str__(self) -> str:
        return f"{self.kind}:{','.join(f'{v:g}' for v in self.params)}"
