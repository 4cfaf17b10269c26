"""A checkpoint in open_clip's format, named by `vision.engine.checkpoint`, is what the vision
engine runs: its embeddings are those of open_clip's model loaded from that file, not those of
the seeded random initialisation the model store holds, and a trace cached for other weights
is never reused for it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from deployments.core.config import VisionEngineConfig
from deployments.core.models import CLIP_SEED, CLIP_VIT_B_32, prepare
from deployments.engines import load_vision_engine

ARCH = "ViT-B-32"
TEXTS = ["a photo of a cat.", "a photo of a red square."]
# Traced and eager towers, and the engine's preprocessing and open_clip's, agree this closely.
ATOL = 1e-4


def images() -> list[Image.Image]:
    noise = np.random.default_rng(7).integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    return [Image.fromarray(pixels) for pixels in noise]


def unrelated(a: np.ndarray, b: np.ndarray) -> bool:
    """No row of `a` points where the same row of `b` does (cosine below 0.5): embeddings of
    independently initialised weights, not the same weights."""
    return bool(np.max(np.sum(a * b, axis=1)) < 0.5)


def write_training_checkpoint(path: Path, seed: int) -> None:
    """A ViT-B-32 state_dict as open_clip's training saves it: under "state_dict", with the
    "module." prefix of a DistributedDataParallel model."""
    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH, pretrained=None)
    state = {f"module.{name}": tensor for name, tensor in model.state_dict().items()}
    torch.save({"epoch": 1, "name": "checkpoint-test", "state_dict": state}, path)


def reference_embeddings(checkpoint: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and text embeddings of open_clip's own model loaded from `checkpoint`."""
    model, _, transform = open_clip.create_model_and_transforms(ARCH, pretrained=checkpoint)
    tokens = open_clip.get_tokenizer(ARCH)(TEXTS)
    with torch.inference_mode():
        image = model.eval().encode_image(torch.stack([transform(i) for i in images()]))
        text = model.encode_text(tokens)
    return (torch.nn.functional.normalize(image, dim=-1).numpy(),
            torch.nn.functional.normalize(text, dim=-1).numpy())


def engine_embeddings(checkpoint: str | None, model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Built as the vision replica builds its engine: the registry, from the config; in
    float32, as the reference is, whatever dtype this CPU would choose."""
    config = VisionEngineConfig(checkpoint=checkpoint, dtype="float32")
    engine = load_vision_engine(config, str(model_dir))
    return engine.embed_images(images()), engine.embed_texts(TEXTS)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A model store holding the default CLIP, built as `make setup` builds it."""
    model_dir = tmp_path_factory.mktemp("store")
    prepare(model_dir, only=[CLIP_VIT_B_32])
    return model_dir


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "open_clip_pytorch_model.bin"
    write_training_checkpoint(path, seed=CLIP_SEED + 1)
    return path


def test_the_configured_checkpoint_is_the_one_the_engine_runs(store, checkpoint):
    default_images, default_texts = engine_embeddings(None, store)  # caches the store's trace
    want_images, want_texts = reference_embeddings(str(checkpoint))
    got_images, got_texts = engine_embeddings(str(checkpoint), store)
    np.testing.assert_allclose(got_images, want_images, atol=ATOL)
    np.testing.assert_allclose(got_texts, want_texts, atol=ATOL)
    assert unrelated(got_images, default_images) and unrelated(got_texts, default_texts)

    cached_images, _ = engine_embeddings(str(checkpoint), store)  # from the checkpoint's trace
    assert list(checkpoint.parent.glob("*.torchscript/*.pt"))
    np.testing.assert_allclose(cached_images, want_images, atol=ATOL)


def test_a_checkpoint_replaced_in_place_is_traced_again(store, checkpoint, tmp_path):
    first_images, _ = engine_embeddings(str(checkpoint), store)
    before = os.stat(checkpoint)
    replacement = tmp_path / checkpoint.name  # torch.save names the archive's folder after it
    write_training_checkpoint(replacement, seed=CLIP_SEED + 2)
    assert replacement.stat().st_size == before.st_size
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p keeps it
    os.replace(replacement, checkpoint)

    want_images, _ = reference_embeddings(str(checkpoint))
    got_images, _ = engine_embeddings(str(checkpoint), store)
    np.testing.assert_allclose(got_images, want_images, atol=ATOL)
    assert unrelated(got_images, first_images)
