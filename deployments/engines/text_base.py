"""The text engine contract: what the text deployment calls, whatever the backend.

Every engine the deployment holds answers `TextEngine`: async `generate` and `stream` of one
request each (the deadline bounds the wait; the deployment enforces it too), `encode_chat`,
`stats` and `check_health`. vLLM and TensorRT-LLM batch continuously inside and answer it
themselves (`batches_itself`). An engine that decodes one batch per call (transformers) answers
`BatchTextEngine` instead, and the replica serves it as a TextEngine through its batcher and
model thread (deployments/batched_text.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from serve_app.core.generation import Completion, RowControl, SamplingParams, StreamDelta


class TextEngine(Protocol):
    batches_itself: bool  # True

    def encode_chat(self, messages: list[dict]) -> list[int]: ...

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None) -> Completion: ...

    def stream(self, prompt: list[int], params: SamplingParams,
               deadline: float | None = None) -> AsyncIterator[StreamDelta]:
        """Text deltas, the last carrying the Completion; closing it early aborts the request."""
        ...

    def stats(self) -> dict[str, int]: ...

    async def check_health(self) -> None: ...


class BatchTextEngine(Protocol):
    """Blocking, run on the replica's model thread. `generate_batch` returns, per row, a
    Completion or the exception of that row alone (a bad seed, a deadline passed mid-decode);
    a cancelled row ends with finish_reason "abort" at the next decode step while the other
    rows go on; a row whose control has `on_text` gets its text after each step."""

    batches_itself: bool  # False

    def encode_chat(self, messages: list[dict]) -> list[int]: ...

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams],
        controls: list[RowControl] | None = None,
    ) -> list[Completion | Exception]: ...
