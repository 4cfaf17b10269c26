"""Runtime backends, one module each, found by name through a registry. Importing this package
imports no engine: `load_*_engine` imports only the module its config names, so a text replica
on vLLM never imports open_clip and an audio replica never imports transformers.

Every engine class builds itself the same way, `Engine.from_config(config, model_dir)`; adding
a backend is a module with such a class and one line below.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def load_text_engine(config: Any, model_dir: str) -> Any:
    return engine_class(TEXT_ENGINES, config.name).from_config(config, model_dir)


def load_vision_engine(config: Any, model_dir: str) -> Any:
    return engine_class(VISION_ENGINES, config.name).from_config(config, model_dir)


def load_audio_engine(config: Any, model_dir: str) -> Any:
    return engine_class(AUDIO_ENGINES, config.name).from_config(config, model_dir)
