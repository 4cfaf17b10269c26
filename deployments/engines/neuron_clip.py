"""CLIP on AWS Inferentia: the image tower compiled with `torch_neuronx.trace`, text on CPU.

Neuron compiles a graph for fixed input shapes, so the image tower is traced once for a batch of
`neuron_batch_size` images and wrapped with `torch_neuronx.dynamic_batch`, which splits larger
batches and pads smaller ones along dimension 0. The compiled tower is saved beside the model
store (TorchScript) and loaded on the next start instead of compiling again. Text embeddings,
cheap and of variable length, stay on the host CPU.

Not verified on hardware here (no Neuron device on the development machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deployments.engines.open_clip_engine import OpenClipEngine, _normalise
from deployments.engines.requires import require


def trace_input_shape(batch_size: int, image_size: int | tuple[int, int]) -> tuple[int, ...]:
    """The pixel tensor shape the image tower is compiled for: (batch, 3, height, width)."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    return (batch_size, 3, height, width)


def compiled_tower_path(model_dir: str, arch: str, batch_size: int) -> Path:
    return Path(model_dir) / "neuron" / f"{arch}-image-b{batch_size}.pt"


class NeuronClipEngine(OpenClipEngine):
    def __init__(self, arch: str, checkpoint: str | None, threads: int, batch_size: int,
                 model_dir: str) -> None:
        require("torch_neuronx", "torch-neuronx", "neuron vision",
                "install it on an Inferentia instance from the Neuron pip repository")
        super().__init__(arch, checkpoint, threads, "float32")
        self.image_tower = self._compiled_tower(compiled_tower_path(model_dir, arch, batch_size),
                                                batch_size)

    def _compiled_tower(self, path: Path, batch_size: int) -> torch.nn.Module:
        import torch_neuronx

        if not path.exists():
            example = torch.zeros(trace_input_shape(batch_size, self.model.visual.image_size))
            traced = torch_neuronx.trace(self.model.visual, example)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.jit.save(traced, str(path))
        return torch_neuronx.dynamic_batch(torch.jit.load(str(path)))

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        pixels = torch.stack([self.preprocess(image) for image in images])
        with torch.inference_mode():
            features = self.image_tower(pixels)
        return _normalise(features)
