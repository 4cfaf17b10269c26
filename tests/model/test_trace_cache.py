"""Cached TorchScript traces: found again for the same checkpoint file and settings only, and
never an error when the cache cannot be written or read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from deployments.engines import trace_cache

SETTINGS = {"arch": "tiny", "dtype": "float32", "device": "cpu", "quantization": None}


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"weights")
    return str(path)


def _traced() -> torch.jit.ScriptModule:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    with torch.inference_mode():
        return torch.jit.freeze(torch.jit.trace(module, torch.zeros(2, 4)))


def test_a_saved_trace_loads_with_its_metadata_and_computes_the_same(checkpoint):
    assert trace_cache.load(checkpoint, SETTINGS) is None
    module = _traced()
    entry = trace_cache.save(checkpoint, SETTINGS, module, {"dimensions": 3})
    assert entry is not None and entry.parent.name == "weights.torchscript"
    loaded, meta = trace_cache.load(checkpoint, SETTINGS)
    assert meta == {"dimensions": 3}
    x = torch.randn(5, 4)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0)
    assert not [p for p in entry.parent.iterdir() if p.name.endswith(".tmp")]


def test_other_settings_or_a_changed_checkpoint_miss(checkpoint):
    trace_cache.save(checkpoint, SETTINGS, _traced(), {})
    assert trace_cache.load(checkpoint, {**SETTINGS, "dtype": "bfloat16"}) is None
    with open(checkpoint, "ab") as weights:
        weights.write(b" retrained")
    assert trace_cache.load(checkpoint, SETTINGS) is None


def test_no_file_checkpoint_no_cache():
    assert trace_cache.save("laion2b_s34b_b79k", SETTINGS, _traced(), {}) is None
    assert trace_cache.load(None, SETTINGS) is None


def test_a_torn_entry_is_ignored(checkpoint):
    entry = trace_cache.save(checkpoint, SETTINGS, _traced(), {})
    entry.with_suffix(".pt").write_bytes(b"half a file")
    assert trace_cache.load(checkpoint, SETTINGS) is None


def test_a_cache_that_cannot_be_written_is_not_an_error(checkpoint):
    Path(checkpoint).with_suffix(trace_cache.SUFFIX).write_text("a file where the dir would go")
    assert trace_cache.save(checkpoint, SETTINGS, _traced(), {}) is None
    assert trace_cache.load(checkpoint, SETTINGS) is None


def test_a_checkpoint_replaced_in_place_with_its_size_and_mtime_kept_misses(checkpoint):
    trace_cache.save(checkpoint, SETTINGS, _traced(), {})
    before = os.stat(checkpoint)
    replacement = Path(checkpoint).with_name("other-weights")
    replacement.write_bytes(b"retrain")  # as long as b"weights"
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p keeps it
    os.replace(replacement, checkpoint)
    after = os.stat(checkpoint)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert trace_cache.load(checkpoint, SETTINGS) is None
