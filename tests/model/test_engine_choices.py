"""Each engine, built from the default config (`auto`) with the store's real weights, runs in
the dtype or compute type this CPU's flags call for, and its replica reports that choice (what
`/v1/models` shows). The expected value comes from the same flags, so the test holds on any CPU.
"""

from __future__ import annotations

import asyncio
import logging

import torch

from deployments.core.config import AudioSettings, TextSettings, VisionSettings
from deployments.core.cpu_features import cpu_features
from deployments.core.precision import cpu_compute_type, cpu_dtype
from deployments.replicas.audio import SpeechTranscriber
from deployments.replicas.text import TextGenerator
from deployments.replicas.vision import ImageEmbedder

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def replica(deployment, settings, model_dir: str):
    return deployment.func_or_class(settings.model_dump(exclude={"batching"}), model_dir)


def reported(built) -> dict[str, str]:
    return asyncio.run(built.model_info()).fields


def test_the_text_engine_runs_and_reports_the_cpus_dtype(model_dir, caplog):
    expected = cpu_dtype(cpu_features())
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        text = replica(TextGenerator, TextSettings(), model_dir)
    assert text.engine.engine.model.dtype == TORCH_DTYPES[expected.value]
    assert reported(text) == {"dtype": expected.value, "dtype_reason": expected.reason}
    assert f"text engine transformers: dtype {expected}" in caplog.messages


def test_a_forced_dtype_is_kept_and_said_to_be_forced(model_dir):
    settings = TextSettings.model_validate({"engine": {"dtype": "float32"}})
    text = replica(TextGenerator, settings, model_dir)
    assert text.engine.engine.model.dtype == torch.float32
    assert reported(text) == {"dtype": "float32", "dtype_reason": "set in the config"}


def test_the_vision_engine_runs_and_reports_the_cpus_dtype(model_dir):
    expected = cpu_dtype(cpu_features())
    vision = replica(ImageEmbedder, VisionSettings(), model_dir)
    assert vision.engine.dtype == TORCH_DTYPES[expected.value]
    assert reported(vision) == {"dtype": expected.value, "dtype_reason": expected.reason}


def test_whisper_runs_and_reports_the_cpus_compute_type(model_dir, caplog):
    import ctranslate2

    expected = cpu_compute_type(cpu_features(), ctranslate2.get_supported_compute_types("cpu"))
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        audio = replica(SpeechTranscriber, AudioSettings(), model_dir)
    # CTranslate2 names int8 on a CPU int8_float32 (int8 weights, float32 activations)
    assert audio.engine.model.model.compute_type in (expected.value,
                                                     f"{expected.value}_float32")
    assert reported(audio) == {"compute_type": expected.value,
                               "compute_type_reason": expected.reason}
    assert f"audio engine faster_whisper: compute_type {expected}" in caplog.messages

