"""Chat completions whose user message carries media as OpenAI content parts: a text part, then
an `image_url` part (a data URL of a seeded synthetic PNG) and/or an `input_audio` part (base64
WAV of real speech), streamed or not. The server perceives the media first (CLIP labels, a
Whisper transcript, side by side) and the LLM answers with what they showed.

    {"role": "user", "content": [
        {"type": "text", "text": "..."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
        {"type": "input_audio", "input_audio": {"data": "<base64 wav>", "format": "wav"}}]}
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

from bench.distributions import Distribution
from bench.images import synthetic_image
from bench.speech import SpeechClip, speech_clips
from bench.workloads.base import CHAT, RequestSpec

MEDIA = ("image", "audio", "both")
QUESTIONS = {"image": "What does this picture show? Answer in one sentence.",
             "audio": "What does the speaker say? Answer in one sentence.",
             "both": "Describe what you hear and what you see, in one sentence."}
IMAGE_POOL = 8


@dataclass
class MultimodalChatWorkload:
    media: str = "both"  # which parts each user message carries: image, audio or both
    output_len: Distribution = field(default_factory=lambda: Distribution.parse("32"))
    stream: bool = True
    model: str = "smollm2-135m-instruct"
    seed: int = 0
    image_size: int = 224
    images: list[str] = field(default_factory=list, repr=False)  # data URLs
    clips: list[SpeechClip] = field(default_factory=list, repr=False)
    name: str = "multimodal-chat"

    def __post_init__(self) -> None:
        if self.media not in MEDIA:
            raise ValueError(f"media must be one of {', '.join(MEDIA)}, got {self.media!r}")
        if self.media != "audio" and not self.images:
            self.images = [png_data_url(synthetic_image(self.seed * 100_003 + i,
                                                        self.image_size, "PNG"))
                           for i in range(IMAGE_POOL)]
        if self.media != "image" and not self.clips:
            self.clips = speech_clips()

    def next_request(self, rng: random.Random) -> RequestSpec:
        parts: list[dict[str, Any]] = [{"type": "text", "text": QUESTIONS[self.media]}]
        if self.media != "audio":
            parts.append({"type": "image_url", "image_url": {"url": rng.choice(self.images)}})
        if self.media != "image":
            wav = base64.b64encode(rng.choice(self.clips).wav).decode()
            parts.append({"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}})
        body: dict[str, Any] = {
            "model": self.model, "messages": [{"role": "user", "content": parts}],
            "max_tokens": self.output_len.sample(rng), "temperature": 0.0,
            "seed": rng.randrange(2**31), "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return RequestSpec(self.name, "/v1/chat/completions", CHAT, json=body, stream=self.stream)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "media": self.media,
                "stream": self.stream, "output_len": str(self.output_len),
                "image_size": self.image_size if self.images else None,
                "images": len(self.images), "clips": len(self.clips)}


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
