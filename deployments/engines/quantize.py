"""Dynamic int8 quantization of a torch model's Linear layers, for CPU inference.

Weights are stored as int8 (a scale per output channel); activations are quantized on the fly
(one scale per tensor) and the matmuls run in int8 (fbgemm/onednn). Works on float32 models
only. Everything that is not an nn.Linear (embeddings, norms, attention softmax, convolutions)
stays float32, and so do the Linear layers a caller names.
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


def quantize_linear_int8(model: torch.nn.Module,
                         keep_float: tuple[str, ...] = ()) -> torch.nn.Module:
    """The model with its nn.Linear layers replaced by dynamically quantized int8 Linears.

    Weights get one scale per output channel. Layers whose name ends with one of `keep_float`
    stay float32: those whose inputs have outliers that one int8 scale per activation tensor
    cannot represent (an LLM's MLP down-projection) or that are tied to other weights.
    Subclasses of nn.Linear are left alone (nn.MultiheadAttention reads its out_proj's weight
    as a tensor).
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    layers = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
              if type(module) is torch.nn.Linear and not name.endswith(keep_float)}
    with warnings.catch_warnings():  # torch marks quantized tensors deprecated; they still work
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, layers, dtype=torch.qint8)
