"""What every text engine takes and returns, so the text deployment is engine-agnostic."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from serve_app.deadline import expired


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
class RowControl:
    """What may end one row of a batch early: its caller going away (`cancelled`, set from
    another thread) or its absolute wall-clock `deadline` passing."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None

    def stop_reason(self) -> str | None:
        """Why the row must stop now: "abort" once cancelled, "deadline" once the deadline
        has passed; None while it may go on."""
        if self.cancelled.is_set():
            return "abort"
        return "deadline" if expired(self.deadline) else None


@dataclass
class StreamDelta:
    """A piece of streamed text; the last one of a stream carries the finished completion."""

    text: str
    completion: Completion | None = field(default=None)


class TextEngine(Protocol):
    """An engine the deployment batches (deployments/batcher.py); its blocking calls run in a
    thread. `generate_batch` returns, per row, a Completion or the exception of that row alone
    (a bad seed, a deadline passed mid-decode); a cancelled row ends with finish_reason
    "abort" at the next decode step while the other rows go on."""

    batches_itself: bool  # False

    def encode_chat(self, messages: list[dict]) -> list[int]: ...

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams],
        controls: list[RowControl] | None = None,
    ) -> list[Completion | Exception]: ...

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
