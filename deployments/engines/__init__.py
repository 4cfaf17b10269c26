"""Runtime backends, one module each. Importing this package imports no engine.

The loaders below import only the engine a config names, so a text replica on vLLM never
imports open_clip and an audio replica never imports transformers.
"""

from __future__ import annotations

from typing import Any

from serve_app.models import resolve


def load_text_engine(engine: Any, model_dir: str) -> Any:
    model_path = str(resolve(engine.model, model_dir))
    if engine.name == "transformers":
        from deployments.engines.transformers_text import TransformersTextEngine

        return TransformersTextEngine(model_path, engine.dtype, engine.threads,
                                      engine.quantization)
    if engine.name == "vllm":
        from deployments.engines.vllm_text import VllmTextEngine

        return VllmTextEngine(model_path, engine)
    if engine.name == "neuron":
        from deployments.engines.neuron_text import NeuronTextEngine

        return NeuronTextEngine(model_path, engine)
    if engine.name == "tensorrt_llm":
        from deployments.engines.tensorrt_llm_text import TensorRtLlmTextEngine

        return TensorRtLlmTextEngine(model_path, engine)
    raise ValueError(f"unknown text engine {engine.name!r}")


def load_vision_engine(engine: Any, model_dir: str) -> Any:
    checkpoint = engine.checkpoint or str(
        resolve("clip-vit-b-32", model_dir) / "open_clip_model.safetensors"
    )
    if engine.name == "open_clip":
        from deployments.engines.open_clip_engine import OpenClipEngine

        return OpenClipEngine(engine.arch, checkpoint, engine.threads, engine.dtype,
                              engine.device, engine.quantization, engine.torchscript)
    if engine.name == "neuron":
        from deployments.engines.neuron_clip import NeuronClipEngine

        return NeuronClipEngine(engine.arch, checkpoint, engine.threads,
                                engine.neuron_batch_size, model_dir)
    raise ValueError(f"unknown vision engine {engine.name!r}")


def load_audio_engine(engine: Any, model_dir: str) -> Any:
    if engine.name == "faster_whisper":
        from deployments.engines.whisper import FasterWhisperEngine

        return FasterWhisperEngine(str(resolve(engine.model, model_dir)), engine.compute_type,
                                   engine.threads, engine.device, engine.beam_size)
    raise ValueError(f"unknown audio engine {engine.name!r}")
