"""CLIP's image preprocessing without torchvision: resize the short side to S (bicubic),
center-crop S x S, RGB, scale to [0, 1], normalise per channel.

The same arithmetic as open_clip's eval transform (torchvision's Resize, CenterCrop, ToTensor,
Normalize on PIL images), so the two give equal tensors (tested). It exists so that a replica
started from a cached image tower (deployments/engines/trace_cache.py) needs neither open_clip
nor torchvision: importing them is ~3.5 s of a replica's start here, ~1.4 s of it torch._dynamo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class ClipPreprocess:
    side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, transform: Any) -> ClipPreprocess | None:
        """open_clip's eval transform as a ClipPreprocess when it is the standard one
        (Resize(S, bicubic), CenterCrop(S), RGB, ToTensor, Normalize); None otherwise."""
        steps = list(getattr(transform, "transforms", []))
        names = [type(step).__name__ for step in steps]
        if names != ["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"]:
            return None
        resize, crop, convert, _, normalize = steps
        side = resize.size
        if isinstance(side, list | tuple):
            if len(side) != 1:
                return None
            side = side[0]
        if (not isinstance(side, int) or resize.max_size is not None
                or resize.interpolation.value != "bicubic" or tuple(crop.size) != (side, side)
                or convert.mode != "RGB"):
            return None
        return cls(side, tuple(map(float, normalize.mean)), tuple(map(float, normalize.std)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipPreprocess:
        return cls(int(data["side"]), tuple(data["mean"]), tuple(data["std"]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """A (3, S, S) float32 tensor."""
        image = self._center_crop(self._resize(image))
        if image.mode != "RGB":
            image = image.convert("RGB")
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        pixels = pixels.contiguous().float().div(255)
        mean = torch.tensor(self.mean, dtype=pixels.dtype)[:, None, None]
        std = torch.tensor(self.std, dtype=pixels.dtype)[:, None, None]
        return pixels.sub_(mean).div_(std)

    def _resize(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.side, int(self.side * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)

    def _center_crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        top = int(round((height - self.side) / 2.0))
        left = int(round((width - self.side) / 2.0))
        return image.crop((left, top, left + self.side, top + self.side))
