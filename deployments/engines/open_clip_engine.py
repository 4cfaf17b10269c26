"""CLIP image and text embeddings with open_clip (torch), L2-normalised, batched."""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np
import torch
from PIL import Image

from deployments.core.models import resolve
from deployments.engines import trace_cache
from deployments.engines.clip_preprocess import ClipPreprocess
from deployments.engines.quantize import check_quantization, quantize_linear_int8
from deployments.engines.torchscript import frozen_trace

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_MAX_IMAGE_PIXELS = 16_777_216  # the default of vision.max_image_pixels
# Past this aspect ratio a model that center-crops the square of the short side sees none of
# the extra length; cropping it before preprocessing keeps a 16M x 1 image from being resized
# to 3.7G pixels (224 on the short side), and leaves margins wider than any resize kernel.
KEEP_ASPECT_RATIO = 2
# open_clip reads the float dtype of its towers from the first block's c_fc weight.
KEEP_FLOAT_FOR_INT8 = ("resblocks.0.mlp.c_fc",)


def checkpoint_path(config: Any, model_dir: str) -> str:
    """The configured checkpoint, else the model store's (random-init weights at set-up)."""
    return config.checkpoint or str(
        resolve("clip-vit-b-32", model_dir) / "open_clip_model.safetensors")


class ImageDecodeError(ValueError):
    """Bytes that are not a decodable image (HTTP 422)."""


class ImageTooLargeError(ValueError):
    """An image whose header declares more pixels than allowed (HTTP 413)."""


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """The image opened lazily (only its header read), its pixel count checked.

    Raises ImageTooLargeError past max_pixels and ImageDecodeError for bytes of no known format.
    """
    if not data:
        raise ImageDecodeError("the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # PIL's own cap, at twice Image.MAX_IMAGE_PIXELS
        raise ImageTooLargeError(f"the image has more than {max_pixels} pixels") from None
    except MemoryError:
        raise
    except Exception as exc:  # PIL's plugins raise many types for corrupt headers
        raise ImageDecodeError(f"the image could not be decoded: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"the image is {width} x {height} pixels; the limit is "
                                 f"{max_pixels} pixels")
    return image


def decode_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                       input_side: int | None = None) -> Image.Image:
    """An RGB PIL image from PNG/JPEG/WebP/... bytes, its size checked before decoding.

    Raises ImageTooLargeError past max_pixels (before any pixel is decoded) and
    ImageDecodeError for undecodable bytes. For `input_side`, see load_pixels.
    """
    return load_pixels(open_image(data, max_pixels), input_side)


def load_pixels(image: Image.Image, input_side: int | None = None) -> Image.Image:
    """Decodes an image from open_image to RGB; ImageDecodeError if its data is corrupt.

    With `input_side` (that of a model which resizes the short side to it, then center-crops
    a square: OpenClipEngine.input_side), only what the model can see is kept: JPEGs are
    decoded at 1/2, 1/4 or 1/8 scale by libjpeg while the short side stays >= input_side,
    and any image is center-cropped to an aspect ratio of at most 2:1 and shrunk by a whole
    factor to a short side between input_side and twice it.
    """
    try:
        if input_side is not None:
            image.draft("RGB", (input_side, input_side))  # JPEG only; ignored by other formats
        image.load()
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no copy when RGB
    except MemoryError:
        raise
    except Exception as exc:  # truncated data, bad chunks: OSError, SyntaxError, ValueError...
        raise ImageDecodeError(f"the image could not be decoded: {exc}") from None
    return rgb if input_side is None else fit_to_input(rgb, input_side)


def fit_to_input(image: Image.Image, input_side: int) -> Image.Image:
    """The center of `image` at aspect ratio <= 2:1, reduced while its short side stays
    >= input_side: what a resize-short-side-then-center-crop model needs, and no more."""
    width, height = image.size
    short = min(width, height)
    keep = KEEP_ASPECT_RATIO * short
    if width > keep or height > keep:
        left, top = max(0, (width - keep) // 2), max(0, (height - keep) // 2)
        image = image.crop((left, top, left + min(width, keep), top + min(height, keep)))
    factor = short // input_side
    return image.reduce(factor) if factor >= 2 else image


class OpenClipEngine:
    """The image tower runs as a frozen TorchScript trace, cached beside the checkpoint
    (trace_cache.py): a replica that finds the cache starts without importing open_clip, and
    builds the whole model only for its first text embedding (text embeddings, classify)."""

    def __init__(
        self, arch: str, checkpoint: str | None, threads: int = 1, dtype: str = "float32",
        device: str = "cpu", quantization: str | None = None, torchscript: bool = True,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.device = _check_device(device)
        check_quantization(quantization, dtype)
        torch.set_num_threads(threads)
        self.dtype = _DTYPES[dtype]
        self._recipe = (arch, checkpoint, quantization)
        self._open_clip: tuple[Any, Any, Any] | None = None
        self._model_lock = threading.Lock()
        settings = {"arch": arch, "dtype": dtype, "device": device, "quantization": quantization}
        cached = trace_cache.load(checkpoint, settings, self.device) if torchscript else None
        if cached is not None:
            self.image_tower, meta = cached
            self.preprocess: Any = ClipPreprocess.from_dict(meta["preprocess"])
            self._dimensions = int(meta["dimensions"])
            return
        self.preprocess = ClipPreprocess.of(self.transform) or self.transform
        self._dimensions = int(self.model.text_projection.shape[1])
        self.image_tower = self.model.visual
        if torchscript:
            self.image_tower = frozen_trace(self.model.visual, self._example_pixels())
            if (isinstance(self.image_tower, torch.jit.ScriptModule)
                    and isinstance(self.preprocess, ClipPreprocess)):
                trace_cache.save(checkpoint, settings, self.image_tower,
                                 {"preprocess": self.preprocess.to_dict(),
                                  "dimensions": self._dimensions})

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> OpenClipEngine:
        return cls(config.arch, checkpoint_path(config, model_dir), config.threads,
                   config.dtype, config.device, config.quantization, config.torchscript)

    @property
    def model(self) -> Any:
        """The whole open_clip model; built at first use when the image tower was cached."""
        return self._loaded()[0]

    @property
    def transform(self) -> Any:
        """open_clip's own preprocessing (torchvision transforms)."""
        return self._loaded()[1]

    @property
    def tokenizer(self) -> Any:
        return self._loaded()[2]

    def _loaded(self) -> tuple[Any, Any, Any]:
        with self._model_lock:
            if self._open_clip is None:
                import open_clip

                arch, checkpoint, quantization = self._recipe
                model, _, transform = open_clip.create_model_and_transforms(
                    arch, pretrained=checkpoint)
                model = model.eval().to(self.device, self.dtype)
                if quantization == "int8":
                    model = quantize_linear_int8(model, KEEP_FLOAT_FOR_INT8)
                self._open_clip = (model, transform, open_clip.get_tokenizer(arch))
        return self._open_clip

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def input_side(self) -> int | None:
        """The square side the preprocessing center-crops (decode_image_bytes's input_side);
        None for a preprocessing other than open_clip's standard one."""
        return self.preprocess.side if isinstance(self.preprocess, ClipPreprocess) else None

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
