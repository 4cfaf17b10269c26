"""The text engine contract: what the text deployment calls, whatever the backend.

Every engine the deployment holds answers `TextEngine`: async `generate` and `stream` of one
request each (the deadline bounds the wait; the deployment enforces it too; the objective places
the request in an engine whose queue policy is "slo", and is ignored by one that serves in
arrival order; the share, its class and tenant, places it in an engine that serves by class or
by fair share: deployments/core/fair_share.py), `encode_chat` (messages through the chat
template), `encode_text` (a plain prompt, for /v1/completions), `stats` and `check_health`.
vLLM and TensorRT-LLM batch continuously inside and answer it themselves (`batches_itself`).
The transformers engine answers `StepTextEngine` instead: its scheduler runs one step at a
time on the replica's model thread, and the replica serves it as a TextEngine
(deployments/replicas/scheduled_text.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.generation import Completion, RowControl, SamplingParams, StreamDelta


class TextEngine(Protocol):
    batches_itself: bool  # True
    by_objective: bool  # serves its waiting requests earliest objective first, else by arrival
    by_class: bool  # serves interactive requests before batch ones
    by_fair_share: bool  # serves the tenants of a class by weighted fair share

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None
                    ) -> list[int]: ...

    def encode_text(self, prompt: str) -> list[int]: ...

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion: ...

    def stream(self, prompt: list[int], params: SamplingParams,
               deadline: float | None = None, objective: float | None = None,
               share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        """Text deltas, the last carrying the Completion; closing it early aborts the request."""
        ...

    def stats(self) -> dict[str, int]: ...

    async def check_health(self) -> None: ...


class StepTextEngine(Protocol):
    """An engine whose scheduler the replica steps on its model thread (transformers):
    `new_sequence` makes a request's row (a bad seed raises InvalidRequest there), the
    `scheduler` takes it (`add`, from any thread) and runs one blocking `step` at a time while
    it `has_work`; the row's `on_finish` gets its Completion or its own error. `generate_batch`
    runs rows to their end on a scheduler of its own, blocking (offline use)."""

    batches_itself: bool  # False
    scheduler: Any
    prefix_cache: Any

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None
                    ) -> list[int]: ...

    def encode_text(self, prompt: str) -> list[int]: ...

    def new_sequence(self, prompt: list[int], params: SamplingParams, control: RowControl,
                     on_finish: Any = None) -> Any: ...

    def generate_batch(
        self, prompts: list[list[int]], params: list[SamplingParams],
        controls: list[RowControl] | None = None,
    ) -> list[Completion | Exception]: ...
