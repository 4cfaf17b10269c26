"""How the pipeline gathers what it heard and saw and turns it into the LLM's messages (no Ray
here, so the baseline stack in bench/ does exactly the same)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

DEFAULT_LABELS = ["person", "animal", "vehicle", "building", "food", "plant", "landscape",
                  "text or document", "indoor scene", "object"]
SYSTEM_PROMPT = ("You are a helpful assistant. The user's message may include the transcript of "
                 "an audio clip and the most likely contents of an image, found by a classifier.")
TOP_LABELS_IN_PROMPT = 3


def pipeline_messages(prompt: str | None, perception: dict[str, Any]) -> list[dict[str, str]]:
    """The LLM's messages: the transcript, the top image labels, then the user's prompt."""
    parts = []
    if perception["transcript"] is not None:
        parts.append(transcript_line(perception["transcript"]))
    if perception["labels"] is not None:
        parts.append(labels_line(perception["labels"]))
    parts.append(prompt or "Respond helpfully to the content above.")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(parts)}]


def transcript_line(transcript: dict[str, Any]) -> str:
    return f"Transcript of the audio: \"{transcript['text']}\""


def labels_line(labels: list[dict[str, Any]]) -> str:
    top = ", ".join(f"{item['label']} ({item['score']:.0%})"
                    for item in labels[:TOP_LABELS_IN_PROMPT])
    return f"The image most likely shows: {top}."


def with_system_prompt(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A chat whose media became text gets the pipeline's system prompt, unless it has one."""
    if any(message["role"] == "system" for message in messages):
        return messages
    return [{"role": "system", "content": SYSTEM_PROMPT}, *messages]


async def gather_perception(stages: dict[str, Awaitable[tuple[Any, float]]]) -> dict[str, Any]:
    """Awaits the timed "audio" and "image" stages together: transcript, labels, timings."""
    results = await asyncio.gather(*stages.values())
    perception: dict[str, Any] = {"transcript": None, "labels": None, "timings": {}}
    for name, (value, seconds) in zip(stages, results):
        perception["timings"][f"{name}_s"] = seconds
        perception["transcript" if name == "audio" else "labels"] = value
    return perception
