"""CLIP image and text embeddings with open_clip (torch), L2-normalised, batched."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from deployments.engines.quantize import check_quantization, quantize_linear_int8
from deployments.engines.torchscript import frozen_trace

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MAX_IMAGE_PIXELS = 64_000_000
# open_clip reads the float dtype of its towers from the first block's c_fc weight.
KEEP_FLOAT_FOR_INT8 = ("resblocks.0.mlp.c_fc",)


class ImageDecodeError(ValueError):
    """Bytes that are not a decodable image."""


def decode_image_bytes(data: bytes) -> Image.Image:
    """An RGB PIL image from PNG/JPEG/WebP/... bytes; ImageDecodeError otherwise."""
    if not data:
        raise ImageDecodeError("the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ImageDecodeError(f"the image has more than {MAX_IMAGE_PIXELS} pixels")
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"the image could not be decoded: {exc}") from None


class OpenClipEngine:
    def __init__(
        self, arch: str, checkpoint: str | None, threads: int = 1, dtype: str = "float32",
        device: str = "cpu", quantization: str | None = None, torchscript: bool = True,
    ) -> None:
        import open_clip

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.device = _check_device(device)
        check_quantization(quantization, dtype)
        torch.set_num_threads(threads)
        self.dtype = _DTYPES[dtype]
        model, _, self.preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=checkpoint
        )
        self.model = model.eval().to(self.device, self.dtype)
        if quantization == "int8":
            self.model = quantize_linear_int8(self.model, KEEP_FLOAT_FOR_INT8)
        self.image_tower = self.model.visual
        if torchscript:
            self.image_tower = frozen_trace(self.model.visual, self._example_pixels())
        self.tokenizer = open_clip.get_tokenizer(arch)

    @property
    def dimensions(self) -> int:
        return int(self.model.text_projection.shape[1])

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        pixels = torch.stack([self.preprocess(image) for image in images])
        pixels = pixels.to(self.device, self.dtype)
        with torch.inference_mode():
            features = self.image_tower(pixels)
        return _normalise(features)

    def _example_pixels(self) -> torch.Tensor:
        height, width = self.model.visual.image_size
        return torch.zeros(2, 3, height, width, device=self.device, dtype=self.dtype)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            features = self.model.encode_text(tokens)
        return _normalise(features)


def _check_device(device: str) -> str:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("vision.engine.device is 'cuda' but torch sees no CUDA device "
                           "(a CPU-only torch build, or no GPU given to this replica)")
    return device


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()


def zero_shot_scores(image_embedding: np.ndarray, label_embeddings: np.ndarray) -> np.ndarray:
    """Softmax over labels of CLIP's scaled cosine similarity (logit scale 100)."""
    logits = 100.0 * label_embeddings @ image_embedding
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()
