"""Runtime backends, one module each, found by name through a registry. Importing this package
imports no engine: `load_*_engine` imports only the module its config names, so a text replica
on vLLM never imports open_clip and an audio replica never imports transformers.

Every engine class builds itself the same way, `Engine.from_config(config, model_dir)`; adding
a backend is a module with such a class and one line below. An engine that chose its dtype or
compute type at start says so in `choices` (name -> deployments/core/precision.py Choice).
"""

from __future__ import annotations

import importlib
from typing import Any

from deployments.core.precision import announce

TEXT_ENGINES = {
    "transformers": "deployments.engines.transformers_text:TransformersTextEngine",
    "vllm": "deployments.engines.vllm_text:VllmTextEngine",
    "neuron": "deployments.engines.neuron_text:NeuronTextEngine",
    "tensorrt_llm": "deployments.engines.tensorrt_llm_text:TensorRtLlmTextEngine",
}
VISION_ENGINES = {
    "open_clip": "deployments.engines.open_clip_engine:OpenClipEngine",
    "neuron": "deployments.engines.neuron_clip:NeuronClipEngine",
}
AUDIO_ENGINES = {
    "faster_whisper": "deployments.engines.whisper:FasterWhisperEngine",
}


def engine_class(registry: dict[str, str], name: str) -> type:
    if name not in registry:
        raise ValueError(f"unknown engine {name!r}; choose one of {sorted(registry)}")
    module, _, attribute = registry[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def load_engine(modality: str, registry: dict[str, str], config: Any, model_dir: str) -> Any:
    """The configured engine, built; the dtypes it chose (`choices`) go to the startup log."""
    engine = engine_class(registry, config.name).from_config(config, model_dir)
    announce(f"{modality} engine {config.name}", getattr(engine, "choices", {}))
    return engine


def load_text_engine(config: Any, model_dir: str) -> Any:
    return load_engine("text", TEXT_ENGINES, config, model_dir)


def load_vision_engine(config: Any, model_dir: str) -> Any:
    return load_engine("vision", VISION_ENGINES, config, model_dir)


def load_audio_engine(config: Any, model_dir: str) -> Any:
    return load_engine("audio", AUDIO_ENGINES, config, model_dir)
