"""Workloads by name, built from the command line's options (seeded, reproducible)."""

from __future__ import annotations

from typing import Any

from bench.distributions import Distribution
from bench.workloads.base import RequestSpec, Workload
from bench.workloads.chat import ChatWorkload
from bench.workloads.embeddings import ImageEmbeddingWorkload, TextEmbeddingWorkload
from bench.workloads.mixed import MixedWorkload, parse_mix
from bench.workloads.multi_turn import MultiTurnWorkload
from bench.workloads.multimodal_chat import MultimodalChatWorkload
from bench.workloads.repeats import RepeatedEmbeddingWorkload
from bench.workloads.speech import PipelineWorkload, TranscriptionWorkload

NAMES = ("chat", "multi-turn", "multimodal-chat", "text-embedding", "image-embedding",
         "embedding-repeats", "transcription", "pipeline", "mixed")
DEFAULT_MIX = "chat=4,image-embedding=2,text-embedding=1,transcription=1,pipeline=1"

__all__ = ["NAMES", "DEFAULT_MIX", "RequestSpec", "Workload", "build_workload"]


def build_workload(name: str, options: dict[str, Any]) -> Workload:
    """`options` holds the CLI's workload flags (see bench/cli.py for their defaults)."""
    if name == "mixed":
        weights = parse_mix(options.get("mix") or DEFAULT_MIX)
        unknown = [part for part in weights if part not in NAMES or part == "mixed"]
        if unknown:
            raise ValueError(f"unknown routes in --mix: {', '.join(unknown)}; "
                             f"choose from {', '.join(NAMES[:-1])}")
        return MixedWorkload({part: (weight, build_workload(part, options))
                              for part, weight in weights.items() if weight > 0})
    o = {"prompt_len": "uniform:32,128", "output_len": "uniform:16,64", "stream": True,
         "seed": 0, "image_size": 224, "inputs_per_request": 1, "language": None,
         "chat_model": "smollm2-135m-instruct", "clip_model": "clip-vit-b-32",
         "whisper_model": "whisper-base", "turns": 4, "system_prompt_len": 400, "media": "both",
         "repeat_share": 0.5, "context": "shared",
         **{k: v for k, v in options.items() if v is not None}}
    if name == "chat":
        return ChatWorkload(Distribution.parse(o["prompt_len"]),
                            Distribution.parse(o["output_len"]), o["stream"], o["chat_model"])
    if name == "multi-turn":
        return MultiTurnWorkload(o["turns"], o["system_prompt_len"],
                                 Distribution.parse(o["prompt_len"]),
                                 Distribution.parse(o["output_len"]), o["stream"],
                                 o["chat_model"], context=o["context"])
    if name == "multimodal-chat":
        return MultimodalChatWorkload(o["media"], Distribution.parse(o["output_len"]),
                                      o["stream"], o["chat_model"], o["seed"], o["image_size"])
    if name == "image-embedding":
        return ImageEmbeddingWorkload(seed=o["seed"], image_size=o["image_size"],
                                      inputs_per_request=o["inputs_per_request"],
                                      model=o["clip_model"] + "-image")
    if name == "text-embedding":
        return TextEmbeddingWorkload(inputs_per_request=o["inputs_per_request"],
                                     model=o["clip_model"])
    if name == "embedding-repeats":
        return RepeatedEmbeddingWorkload(repeat_share=o["repeat_share"], seed=o["seed"],
                                         image_size=o["image_size"], clip_model=o["clip_model"])
    if name == "transcription":
        return TranscriptionWorkload(model=o["whisper_model"], language=o["language"])
    if name == "pipeline":
        return PipelineWorkload(output_len=Distribution.parse(o["output_len"]),
                                stream=o["stream"], seed=o["seed"])
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(NAMES)}")
