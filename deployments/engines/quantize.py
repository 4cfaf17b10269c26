"""Dynamic int8 quantization of a torch model's Linear layers, for CPU inference.

Weights are stored as int8 (per-tensor scale); activations are quantized on the fly per batch,
and the matmuls run in int8 (fbgemm/onednn). Works on float32 models only. Everything that is
not an nn.Linear (embeddings, norms, attention softmax, convolutions) stays float32.
"""

from __future__ import annotations

import warnings

import torch

QUANTIZATIONS = (None, "int8")


def check_quantization(quantization: str | None, dtype: str) -> None:
    """Raises ValueError for a quantization this module cannot apply with this dtype."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "int8" and dtype != "float32":
        raise ValueError(f"int8 quantization needs dtype float32, got {dtype!r}")


def quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every nn.Linear replaced by a dynamically quantized int8 Linear."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch marks quantized tensors deprecated; they still work
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
