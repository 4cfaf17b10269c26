"""The model store: names resolve, missing models say how to prepare them, prepare is idempotent."""

from __future__ import annotations

import pytest

from deployments.core import models


def test_missing_model_names_the_prepare_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="deployments.core.models prepare"):
        models.model_path(models.WHISPER_BASE, tmp_path)


def test_half_written_model_is_not_picked_up(tmp_path):
    (tmp_path / models.WHISPER_BASE).mkdir()
    (tmp_path / models.WHISPER_BASE / "model.bin").write_bytes(b"partial")
    with pytest.raises(FileNotFoundError):
        models.model_path(models.WHISPER_BASE, tmp_path)


def test_resolve_accepts_paths(tmp_path):
    assert models.resolve(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError):
        models.resolve(str(tmp_path / "missing"))
