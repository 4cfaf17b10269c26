"""What a workload hands the client: one HTTP request, and what is known about it in advance."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

# How the client reads the response; one per kind of route.
CHAT, EMBEDDING, TRANSCRIPTION, PIPELINE = "chat", "embedding", "transcription", "pipeline"


@dataclass
class UploadFile:
    field: str
    filename: str
    data: bytes
    content_type: str


@dataclass
class RequestSpec:
    route: str  # the label metrics are grouped by, e.g. "chat" or "image-embedding"
    path: str
    kind: str
    json: dict[str, Any] | None = None
    form_fields: dict[str, str] | None = None
    upload: UploadFile | None = None
    stream: bool = False
    items: int = 1
    reference_text: str | None = None  # what the audio says, to score the transcript
    audio_duration_s: float | None = None


class Workload(Protocol):
    name: str

    def next_request(self, rng: random.Random) -> RequestSpec: ...

    def describe(self) -> dict[str, Any]: ...
