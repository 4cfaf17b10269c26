"""The vision engine's device: CUDA is asked for explicitly and fails clearly without it."""

from __future__ import annotations

import pytest
import torch

from deployments.engines.open_clip_engine import _check_device


def test_cuda_without_a_gpu_fails_in_one_clear_sentence(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="device is 'cuda' but torch sees no CUDA device"):
        _check_device("cuda")


def test_only_cpu_and_cuda_are_devices():
    assert _check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        _check_device("tpu")
