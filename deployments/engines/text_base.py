"""What every text engine takes and returns, so the text deployment is engine-agnostic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from serve_app.core.generation import Completion, RowControl, SamplingParams, StreamDelta


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
