"""The vision engine contract: what the vision deployment calls, whatever the backend
(open_clip on CPU/GPU, the Neuron-traced tower). Blocking calls, run on the replica's model
thread; embeddings come back L2-normalised, one row per input."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image


class VisionEngine(Protocol):
    @property
    def dimensions(self) -> int: ...

    @property
    def input_side(self) -> int | None:
        """The short side the model resizes to (images are decoded no larger than needed)."""
        ...

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...
