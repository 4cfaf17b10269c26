"""Seeded synthetic photos-like images (gradients, shapes, noise) as encoded bytes."""

from __future__ import annotations

import io
import random

import numpy as np
from PIL import Image, ImageDraw


def synthetic_image(seed: int, size: int = 224, fmt: str = "JPEG") -> bytes:
    rng = random.Random(seed)
    noise = np.random.default_rng(seed).integers(0, 40, (size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    base = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    pixels = (base * (0.5 + 0.5 * ramp)).astype(np.uint8) + noise
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 6)):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        x1, y1 = x0 + rng.randint(8, size // 2), y0 + rng.randint(8, size // 2)
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()
