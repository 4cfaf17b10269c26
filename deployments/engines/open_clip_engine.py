"""CLIP image and text embeddings with open_clip (torch), L2-normalised, batched."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from PIL import Image

from deployments.core.cpu_features import cpu_features
from deployments.core.models import resolve
from deployments.core.precision import AUTO, Choice, cuda_dtype, resolve_dtype
from deployments.engines import trace_cache
from deployments.engines.clip_preprocess import ClipPreprocess
from deployments.engines.quantize import check_quantization, quantize_linear_int8
from deployments.engines.torchscript import frozen_trace

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# open_clip reads the float dtype of its towers from the first block's c_fc weight.
KEEP_FLOAT_FOR_INT8 = ("resblocks.0.mlp.c_fc",)


def checkpoint_path(config: Any, model_dir: str) -> str:
    """The configured checkpoint, else the model store's (random-init weights at set-up)."""
    return config.checkpoint or str(
        resolve("clip-vit-b-32", model_dir) / "open_clip_model.safetensors")


class OpenClipEngine:
    """The image tower runs as a frozen TorchScript trace, cached beside the checkpoint
    (trace_cache.py): a replica that finds the cache starts without importing open_clip, and
    builds the whole model only for its first text embedding (text embeddings, classify)."""

    def __init__(
        self, arch: str, checkpoint: str | None, threads: int = 1, dtype: str = "float32",
        device: str = "cpu", quantization: str | None = None, torchscript: bool = True,
    ) -> None:
        """`dtype` "auto" is chosen for the device (on a CPU from its flags:
        deployments/core/precision.py); the choice and its reason are in `choices`."""
        self.device = _check_device(device)
        self.choices = {"dtype": _choose_dtype(dtype, self.device)}
        dtype = self.choices["dtype"].value
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
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
        """The square side the preprocessing center-crops (core/image_media.py's input_side);
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


def _choose_dtype(dtype: str, device: str) -> Choice:
    if dtype == AUTO and device == "cuda":
        return cuda_dtype(torch.cuda.is_bf16_supported())
    return resolve_dtype(dtype, cpu_features())


def _normalise(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()


def zero_shot_scores(image_embedding: np.ndarray, label_embeddings: np.ndarray) -> np.ndarray:
    """Softmax over labels of CLIP's scaled cosine similarity (logit scale 100)."""
    logits = 100.0 * label_embeddings @ image_embedding
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()
