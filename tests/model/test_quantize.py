"""Dynamic int8 quantization of Linear layers: what it accepts, and that outputs stay close."""

from __future__ import annotations

import pytest
import torch

from deployments.engines.quantize import check_quantization, quantize_linear_int8


def test_accepts_none_and_int8_on_float32_only():
    check_quantization(None, "bfloat16")
    check_quantization("int8", "float32")
    with pytest.raises(ValueError, match="float32"):
        check_quantization("int8", "bfloat16")
    with pytest.raises(ValueError, match="one of"):
        check_quantization("int4", "float32")


def test_linear_layers_become_int8_and_outputs_stay_close():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(),
                                torch.nn.LayerNorm(256), torch.nn.Linear(256, 32)).eval()
    inputs = torch.randn(16, 64)
    expected = model(inputs)
    quantized = quantize_linear_int8(model)
    kinds = [type(m).__name__ for m in quantized]
    assert kinds == ["Linear", "GELU", "LayerNorm", "Linear"]
    assert all(m.weight().dtype == torch.qint8 for m in (quantized[0], quantized[3]))
    similarity = torch.nn.functional.cosine_similarity(quantized(inputs), expected, dim=-1)
    assert similarity.min() > 0.99


def test_named_layers_stay_float():
    model = torch.nn.Sequential()
    model.add_module("up_proj", torch.nn.Linear(8, 8))
    model.add_module("down_proj", torch.nn.Linear(8, 8))
    quantized = quantize_linear_int8(model, keep_float=("down_proj",))
    assert type(quantized.up_proj) is not torch.nn.Linear
    assert type(quantized.down_proj) is torch.nn.Linear
