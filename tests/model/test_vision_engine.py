"""open_clip engine: normalised embeddings, deterministic store weights, image decoding."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from deployments.core.errors import Undecodable
from deployments.core.image_media import decode_image_bytes
from deployments.core.models import model_path
from deployments.engines.open_clip_engine import OpenClipEngine, zero_shot_scores
from tests.conftest import REPO
from tests.media import png_image


@pytest.fixture(scope="module")
def checkpoint(model_dir) -> str:
    return str(model_path("clip-vit-b-32", model_dir) / "open_clip_model.safetensors")


@pytest.fixture(scope="module")
def engine(checkpoint):
    return OpenClipEngine("ViT-B-32", checkpoint)


def test_embeddings_are_unit_length_and_batch_invariant(engine):
    images = [decode_image_bytes(png_image((i * 40, 80, 120))) for i in range(4)]
    batch = engine.embed_images(images)
    assert batch.shape == (4, engine.dimensions)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(engine.embed_images(images[2:3])[0], batch[2], atol=1e-4)
    texts = engine.embed_texts(["a cat", "a dog"])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_bad_images_raise_decode_errors():
    for data in (b"", b"not an image", png_image()[:40]):
        with pytest.raises(Undecodable):
            decode_image_bytes(data)


def test_zero_shot_scores_are_a_distribution_favouring_the_closest_label():
    image = np.array([1.0, 0.0])
    labels = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])
    scores = zero_shot_scores(image, labels)
    assert scores.sum() == pytest.approx(1.0)
    assert int(np.argmax(scores)) == 1


def test_the_traced_image_tower_embeds_exactly_as_eager(engine, checkpoint):
    eager = OpenClipEngine("ViT-B-32", checkpoint, torchscript=False)
    assert isinstance(engine.image_tower, torch.jit.ScriptModule)
    images = [decode_image_bytes(png_image((i * 60, 30, 200))) for i in range(3)]
    np.testing.assert_allclose(engine.embed_images(images), eager.embed_images(images),
                               atol=1e-6)


FROM_CACHE = """
import sys, numpy as np
from deployments.core.image_media import decode_image_bytes
from deployments.engines.open_clip_engine import OpenClipEngine
from tests.media import png_image
engine = OpenClipEngine("ViT-B-32", sys.argv[1])
images = [decode_image_bytes(png_image((i * 60, 30, 200))) for i in range(3)]
heavy = [name for name in ("open_clip", "torchvision") if name in sys.modules]
np.save(sys.argv[2], engine.embed_images(images))
print(heavy, engine._open_clip is None, engine.dimensions, engine.input_side)
np.save(sys.argv[3], engine.embed_texts(["a cat", "a dog"]))
"""


def test_a_replica_after_the_first_starts_from_the_cached_trace(checkpoint, tmp_path):
    """The first engine of a checkpoint caches its traced image tower; the next one (a new
    process, as a scale-up's replica is) embeds images from it without importing open_clip
    or torchvision, identically, and builds the model only for text."""
    linked = tmp_path / "open_clip_model.safetensors"  # a cache of this test's own
    linked.symlink_to(checkpoint)
    first = OpenClipEngine("ViT-B-32", str(linked))
    images = [decode_image_bytes(png_image((i * 60, 30, 200))) for i in range(3)]
    assert (tmp_path / "open_clip_model.torchscript").is_dir()
    out = subprocess.run([sys.executable, "-c", FROM_CACHE, str(linked), str(tmp_path / "i.npy"),
                          str(tmp_path / "t.npy")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert out.stdout.split("\n")[-2] == "[] True 512 224"
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), first.embed_images(images))
    np.testing.assert_allclose(np.load(tmp_path / "t.npy"), first.embed_texts(["a cat", "a dog"]),
                               atol=1e-6)
