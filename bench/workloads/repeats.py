"""Embeddings where a share of the requests repeat an input: what a response cache serves.

Each request is, with probability `repeat_share`, one input drawn from a small seeded pool
(the same few inputs again and again), and otherwise a fresh one that no earlier request sent.
A fresh image is a pool image with a JPEG comment segment holding 64 random bits inserted after
its start marker: its bytes (and so its cache key, which hashes them) are new, while the pixels,
and so the model's work, are those of the pool image. This costs the client microseconds, where
drawing and encoding a new image would take milliseconds of the cores the server runs on. A
fresh text is a pool text followed by a random number. Fresh inputs come from the request
loop's seeded rng: a run with another seed sends other fresh inputs.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

from bench.images import synthetic_image
from bench.workloads.base import EMBEDDING, RequestSpec
from bench.workloads.chat import WORDS

MEDIA = ("image", "text")
JPEG_START, JPEG_COMMENT = b"\xff\xd8", b"\xff\xfe"


def fresh_jpeg(jpeg: bytes, tag: bytes) -> bytes:
    """`jpeg` with a comment segment holding `tag` right after its start marker: other bytes,
    the same pixels."""
    if not jpeg.startswith(JPEG_START):
        raise ValueError("not a JPEG")
    segment = JPEG_COMMENT + (len(tag) + 2).to_bytes(2, "big") + tag
    return JPEG_START + segment + jpeg[len(JPEG_START):]


@dataclass
class RepeatedEmbeddingWorkload:
    repeat_share: float = 0.5
    pool_size: int = 8
    media: str = "image"  # "image" or "text"
    seed: int = 0
    image_size: int = 224
    clip_model: str = "clip-vit-b-32"
    name: str = "embedding-repeats"
    route: str = ""  # the metrics label; default: image- or text-embedding-repeats
    pool: list[bytes] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.media not in MEDIA:
            raise ValueError(f"media must be one of {', '.join(MEDIA)}, not {self.media!r}")
        if not 0.0 <= self.repeat_share <= 1.0:
            raise ValueError("repeat_share must lie in [0, 1]")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.route = self.route or f"{self.media}-embedding-repeats"
        if not self.pool:
            rng = random.Random(self.seed)
            self.pool = [self._pool_input(rng, i) for i in range(self.pool_size)]

    def _pool_input(self, rng: random.Random, i: int) -> bytes:
        if self.media == "image":
            return synthetic_image(self.seed * 100_003 + 50_000 + i, self.image_size, "JPEG")
        return f"{' '.join(rng.choice(WORDS) for _ in range(12))} {i}".encode()

    @property
    def model(self) -> str:
        return self.clip_model + ("-image" if self.media == "image" else "")

    def next_request(self, rng: random.Random) -> RequestSpec:
        base = rng.choice(self.pool)
        if rng.random() >= self.repeat_share:  # fresh: never sent before
            tag = f"{rng.getrandbits(64):016x}".encode()
            base = fresh_jpeg(base, tag) if self.media == "image" else base + b" " + tag
        value = base64.b64encode(base).decode() if self.media == "image" else base.decode()
        return RequestSpec(self.route, "/v1/embeddings", EMBEDDING,
                           json={"model": self.model, "input": value})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "media": self.media, "model": self.model,
                "repeat_share": self.repeat_share, "pool_size": self.pool_size,
                "image_size": self.image_size if self.media == "image" else None,
                "fresh_inputs": "pool image + a random JPEG comment" if self.media == "image"
                else "pool text + a random number"}
