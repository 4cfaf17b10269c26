"""A vision group's embed call for the response cache's tests: one vector per input, alike for
inputs of the same length, and a record of each call (what the cache did not answer itself)."""

from __future__ import annotations

import numpy as np


class Embedder:
    def __init__(self) -> None:
        self.calls: list[list] = []

    async def __call__(self, items: list) -> list[np.ndarray]:
        self.calls.append(list(items))
        return [np.full(4, float(len(str(item))), np.float32) for item in items]
