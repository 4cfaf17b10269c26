"""The model store as set up: prepare is idempotent and the store holds every model's files."""

from __future__ import annotations

from deployments.core import models


def test_prepare_twice_does_no_work_the_second_time(model_dir):
    first = models.prepare(model_dir)
    stamps = {name: (path / "model.bin").stat().st_mtime_ns
              if (path / "model.bin").exists() else path.stat().st_mtime_ns
              for name, path in first.items()}
    second = models.prepare(model_dir)
    assert second == first
    for name, path in second.items():
        current = (path / "model.bin") if (path / "model.bin").exists() else path
        assert current.stat().st_mtime_ns == stamps[name]


def test_store_holds_the_expected_files(model_dir):
    assert (models.model_path(models.WHISPER_BASE, model_dir) / "model.bin").stat().st_size > 1e8
    llm = models.model_path(models.SMOLLM2, model_dir)
    assert (llm / "model.safetensors").exists() and (llm / "tokenizer.json").exists()
    assert "quantization_config" not in (llm / "config.json").read_text()
    clip = models.model_path(models.CLIP_VIT_B_32, model_dir)
    assert (clip / "open_clip_model.safetensors").exists()
