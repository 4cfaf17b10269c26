"""CLIP precision on this CPU: float32 vs bfloat16 vs int8 (dynamic, Linear layers), open_clip.

Quality: cosine similarity of each image and text embedding to its float32 embedding (1.0 is
identical), mean and worst. Speed: images/s of the engine's batched image embedding, the path
the vision deployment runs, best of a few rounds taking turns between the variants. The model
store's ViT-B-32 has random weights (no package ships CLIP weights), so this measures how far
each precision moves the numbers, not zero-shot accuracy.

    python -m bench.quant_clip [--batch 16] [--threads 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
from PIL import Image, ImageDraw

from bench.quant_common import best_interleaved, uptime, write_results
from deployments.core.models import default_model_dir, resolve
from deployments.engines.open_clip_engine import OpenClipEngine

VARIANTS = [("float32", "float32", None), ("bfloat16", "bfloat16", None),
            ("int8", "float32", "int8")]
TEXTS = ["a photo of a cat", "a red square on a white background", "a diagram of a circuit",
         "a mountain at sunset", "two dogs playing in the snow", "a bowl of fruit",
         "a city street at night", "a handwritten note"]


def test_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Structured pictures (gradients, shapes, noise) drawn from a fixed seed."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        y, x = np.mgrid[0:256, 0:256] / 255.0
        base = np.stack([x, y, 1 - x * y], -1) * rng.uniform(0.3, 1.0, 3)
        pixels = (base + rng.normal(0, 0.05, base.shape)).clip(0, 1)
        image = Image.fromarray((pixels * 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x0, y0 = rng.integers(0, 200, 2)
            box = (int(x0), int(y0), int(x0 + rng.integers(20, 56)), int(y0 + rng.integers(20, 56)))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        images.append(image)
    return images


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two sets of L2-normalised embeddings."""
    return (a * b).sum(axis=1)


def images_per_s(engine: OpenClipEngine, images: list[Image.Image]) -> float:
    started = time.perf_counter()
    engine.embed_images(images)
    return len(images) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quant_clip")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="speed: best of, interleaved")
    opts = parser.parse_args(argv)
    load = uptime()
    checkpoint = str(resolve("clip-vit-b-32", default_model_dir()) / "open_clip_model.safetensors")
    images = test_images(opts.batch)
    engines = {name: OpenClipEngine("ViT-B-32", checkpoint, opts.threads, dtype,
                                    quantization=quantization)
               for name, dtype, quantization in VARIANTS}
    embeddings = {name: (e.embed_images(images), e.embed_texts(TEXTS))
                  for name, e in engines.items()}
    speed = best_interleaved({name: partial(images_per_s, e, images)
                              for name, e in engines.items()}, opts.rounds)
    rows = []
    for name, dtype, quantization in VARIANTS:
        image_cos, text_cos = (cosine(e, r) for e, r in zip(embeddings[name],
                                                             embeddings["float32"]))
        rows.append({"variant": name, "config": f"dtype={dtype} quantization={quantization}",
                     "image cos mean": f"{image_cos.mean():.6f}",
                     "image cos min": f"{image_cos.min():.6f}",
                     "text cos mean": f"{text_cos.mean():.6f}", "images/s": speed[name],
                     "speed vs float32": speed[name] / speed["float32"]})
    write_results(
        "quant_clip", f"CLIP ViT-B-32 precision, open_clip engine (batch {opts.batch}, "
        f"{opts.threads} thread)",
        ["variant", "config", "image cos mean", "image cos min", "text cos mean", "images/s",
         "speed vs float32"], rows,
        ["Cosine similarity to the float32 embedding of the same input. int8 quantizes the "
         "MLP Linear layers of both towers; attention projections and the final embedding "
         "projections stay float32."],
        load)


if __name__ == "__main__":
    main()
