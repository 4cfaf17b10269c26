"""CLIP preprocessing without torchvision gives exactly open_clip's tensors."""

from __future__ import annotations

import open_clip
import pytest
import torch
from PIL import Image

from deployments.engines.clip_preprocess import ClipPreprocess


@pytest.fixture(scope="module")
def transform():
    return open_clip.image_transform(224, is_train=False)


def _image(size: tuple[int, int], mode: str) -> Image.Image:
    generator = torch.Generator().manual_seed(size[0] * 7 + size[1])
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB").convert(mode)


def test_open_clips_standard_transform_is_recognised(transform):
    preprocess = ClipPreprocess.of(transform)
    assert preprocess is not None and preprocess.side == 224
    assert ClipPreprocess.from_dict(preprocess.to_dict()) == preprocess


@pytest.mark.parametrize("size", [(224, 224), (300, 250), (250, 300), (1000, 700), (17, 500),
                                  (225, 224), (640, 480)])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_tensors_equal_open_clips(transform, size, mode):
    image = _image(size, mode)
    ours = ClipPreprocess.of(transform)(image)
    assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, transform(image), rtol=0, atol=1e-6)


def test_any_other_pipeline_is_left_to_open_clip():
    assert ClipPreprocess.of(open_clip.image_transform(224, is_train=False,
                                                       interpolation="bilinear")) is None
    assert ClipPreprocess.of(open_clip.image_transform(224, is_train=False,
                                                       resize_mode="squash")) is None
    assert ClipPreprocess.of(open_clip.image_transform(224, is_train=True)) is None
    assert ClipPreprocess.of(lambda image: image) is None
