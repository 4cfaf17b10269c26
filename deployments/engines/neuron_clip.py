"""CLIP on AWS Inferentia: the image tower compiled with `torch_neuronx.trace`, text on CPU.

Neuron compiles a graph for fixed input shapes, so the image tower is traced once for a batch of
`neuron_batch_size` images and wrapped with `torch_neuronx.dynamic_batch`, which splits larger
batches and pads smaller ones along dimension 0. The compiled tower is saved beside the model
store (TorchScript, written to a temporary file and renamed) and loaded on the next start
instead of compiling again: its file name carries the architecture, dtype, batch and a digest
of the checkpoint's bytes, so a new checkpoint or dtype compiles anew. Text embeddings, cheap
and of variable length, stay on the host CPU.

Not verified on hardware here (no Neuron device on the development machine).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from deployments.core.precision import AUTO, Choice, forced
from deployments.engines.open_clip_engine import (
    _DTYPES,
    OpenClipEngine,
    _normalise,
    checkpoint_path,
)
from deployments.engines.requires import require


def trace_input_shape(batch_size: int, image_size: int | tuple[int, int]) -> tuple[int, ...]:
    """The pixel tensor shape the image tower is compiled for: (batch, 3, height, width)."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    return (batch_size, 3, height, width)


def checkpoint_digest(checkpoint: str, chunk_bytes: int = 1 << 24) -> str:
    """The first 16 hex digits of the checkpoint file's SHA-256 (about a second for CLIP)."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as weights:
        while chunk := weights.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def compiled_tower_path(model_dir: str, arch: str, dtype: str, batch_size: int,
                        checkpoint: str) -> Path:
    name = f"{arch}-{dtype}-b{batch_size}-{checkpoint_digest(checkpoint)}.pt"
    return Path(model_dir) / "neuron" / name


def save_whole(module: torch.jit.ScriptModule, path: Path) -> None:
    """Saves `module` at `path` whole or not at all: into a temporary file beside it, renamed
    onto `path` once written, so a save cut short leaves nothing a later start would load, and
    replicas compiling the same tower at once each rename a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.jit.save(module, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class NeuronClipEngine(OpenClipEngine):
    def __init__(self, arch: str, checkpoint: str, threads: int, batch_size: int,
                 model_dir: str, dtype: str = "float32") -> None:
        require("torch_neuronx", "torch-neuronx", "neuron vision",
                "install it on an Inferentia instance from the Neuron pip repository")
        super().__init__(arch, checkpoint, threads, "float32", torchscript=False)
        self.choices = {"dtype": _tower_dtype(dtype)}  # the text tower stays float32 on the host
        dtype = self.choices["dtype"].value
        self.tower_dtype = _DTYPES[dtype]
        path = compiled_tower_path(model_dir, arch, dtype, batch_size, checkpoint)
        self.image_tower = self._compiled_tower(path, batch_size)

    @classmethod
    def from_config(cls, config: Any, model_dir: str) -> NeuronClipEngine:
        return cls(config.arch, checkpoint_path(config, model_dir), config.threads,
                   config.neuron_batch_size, model_dir, config.dtype)

    def _compiled_tower(self, path: Path, batch_size: int) -> torch.nn.Module:
        import torch_neuronx

        if not path.exists():
            tower = self.model.visual.to(self.tower_dtype)
            example = torch.zeros(trace_input_shape(batch_size, tower.image_size),
                                  dtype=self.tower_dtype)
            save_whole(torch_neuronx.trace(tower, example), path)
        return torch_neuronx.dynamic_batch(torch.jit.load(str(path)))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.tower_dtype)
        with torch.inference_mode():
            features = self.image_tower(pixels)
        return _normalise(features)


def _tower_dtype(dtype: str) -> Choice:
    if dtype == AUTO:
        return Choice("bfloat16", "auto: NeuronCores compute in bfloat16")
    return forced(dtype)
