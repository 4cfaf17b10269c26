"""Image and text embeddings (CLIP) through /v1/embeddings, from seeded input pools."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

from bench.distributions import Distribution
from bench.images import synthetic_image
from bench.workloads.base import EMBEDDING, RequestSpec
from bench.workloads.chat import WORDS


@dataclass
class ImageEmbeddingWorkload:
    seed: int = 0
    pool_size: int = 32
    image_size: int = 224
    image_format: str = "JPEG"
    inputs_per_request: int = 1
    model: str = "clip-vit-b-32-image"
    name: str = "image-embedding"
    pool: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.pool:
            self.pool = [base64.b64encode(synthetic_image(self.seed * 100_003 + i,
                                                          self.image_size,
                                                          self.image_format)).decode()
                         for i in range(self.pool_size)]

    def next_request(self, rng: random.Random) -> RequestSpec:
        inputs = [rng.choice(self.pool) for _ in range(self.inputs_per_request)]
        body = {"model": self.model, "input": inputs if len(inputs) > 1 else inputs[0]}
        return RequestSpec(self.name, "/v1/embeddings", EMBEDDING, json=body, items=len(inputs))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "pool_size": self.pool_size,
                "image_size": self.image_size, "image_format": self.image_format,
                "inputs_per_request": self.inputs_per_request}


@dataclass
class TextEmbeddingWorkload:
    text_len: Distribution = field(default_factory=lambda: Distribution.parse("uniform:4,24"))
    inputs_per_request: int = 1
    model: str = "clip-vit-b-32"
    name: str = "text-embedding"

    def next_request(self, rng: random.Random) -> RequestSpec:
        inputs = [" ".join(rng.choice(WORDS) for _ in range(self.text_len.sample(rng)))
                  for _ in range(self.inputs_per_request)]
        body = {"model": self.model, "input": inputs if len(inputs) > 1 else inputs[0]}
        return RequestSpec(self.name, "/v1/embeddings", EMBEDDING, json=body, items=len(inputs))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "text_len": str(self.text_len),
                "inputs_per_request": self.inputs_per_request}
