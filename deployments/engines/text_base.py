"""What every text engine takes and returns, so the text deployment is engine-agnostic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings; one batch may mix requests with different settings."""

    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "abort"


@dataclass
class StreamDelta:
    """A piece of streamed text; the last one of a stream carries the finished completion."""

    text: str
    completion: Completion | None = field(default=None)


class TextEngine(Protocol):
    """An engine the deployment batches (@serve.batch); its blocking calls run in a thread."""

    batches_itself: bool  # False

    def encode_chat(self, messages: list[dict]) -> list[int]: ...

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams]
    ) -> list[Completion]: ...

    def stream(
        self, prompt: list[int], params: SamplingParams, cancelled=None
    ) -> Iterator[StreamDelta]: ...


class SelfBatchingTextEngine(Protocol):
    """An engine that batches continuously inside (vLLM, TensorRT-LLM): one awaited call per
    request, which it schedules beside the others. Leaving a stream early aborts the request."""

    batches_itself: bool  # True

    def encode_chat(self, messages: list[dict]) -> list[int]: ...

    async def generate(self, prompt: list[int], params: SamplingParams) -> Completion: ...

    def stream(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[StreamDelta]: ...

    def stats(self) -> dict[str, int]: ...
