"""Text generation deployment: batched completions, token-by-token streaming.

Engines that batch continuously themselves (vLLM, TensorRT-LLM) get every request as it comes;
the others (transformers) get batches gathered here by a DynamicBatcher, each row with a
RowControl through which a caller that goes away, or a deadline that passes, ends that row
at the next decode step while the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments import metrics
from deployments.batcher import DynamicBatcher
from deployments.engines import load_text_engine
from deployments.replica_base import BatchedReplica
from deployments.thread_bridge import iterate_in_thread
from serve_app.core.config import TextSettings
from serve_app.core.deadline import check, remaining
from serve_app.core.errors import DeadlineExceeded, InvalidRequest
from serve_app.core.generation import Completion, RowControl, SamplingParams, StreamDelta

_Item = tuple[list[int], SamplingParams, RowControl]


@serve.deployment
class TextGenerator(BatchedReplica):
    batched_methods = ("generate_batches",)

    def __init__(self, settings: dict[str, Any], model_dir: str) -> None:
        super().__init__(TextSettings.model_validate(settings))
        self.engine = load_text_engine(self.settings.engine, model_dir)
        self.generate_batches = DynamicBatcher(self._generate_batch, on_event=self.stats.count)

    def engine_stats(self) -> dict[str, int]:
        """Request counts of an engine that batches itself (vLLM, TensorRT-LLM); else {}."""
        return self.engine.stats() if self.engine.batches_itself else {}

    async def check_health(self) -> None:
        await super().check_health()
        check_engine = getattr(self.engine, "check_health", None)
        if check_engine is not None:
            await check_engine()

    async def generate(self, messages: list[dict], params: SamplingParams,
                       deadline: float | None = None) -> dict[str, Any]:
        check(deadline, "the completion")
        prompt = self._encode(messages)
        if self.engine.batches_itself:  # continuous batching: straight to the engine
            completion = await _before(deadline, self.engine.generate(prompt, params))
        else:
            completion = await self._generate_batched(prompt, params, deadline)
        self._count_tokens(completion)
        return asdict(completion)

    async def stream(self, messages: list[dict], params: SamplingParams,
                     deadline: float | None = None) -> AsyncIterator[dict]:
        """Yields {"text": delta} items, then one {"completion": {...}} item; raises
        DeadlineExceeded, ending the stream, once the deadline passes."""
        check(deadline, "the completion")
        prompt = self._encode(messages)
        finished = False
        deltas = self._deltas(prompt, params)
        try:
            while (delta := await _before(deadline, anext(deltas, None))) is not None:
                if delta.completion is not None:
                    finished = True
                    self._count_tokens(delta.completion)
                    yield {"completion": asdict(delta.completion)}
                elif delta.text:
                    yield {"text": delta.text}
        finally:
            await deltas.aclose()  # stops the decode: in its thread, or aborted in the engine
            if not finished:  # cancelled because the client disconnected, or past the deadline
                self.stats.count("stream_aborted")

    def _deltas(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[StreamDelta]:
        if self.engine.batches_itself:
            return self.engine.stream(prompt, params)
        return iterate_in_thread(lambda cancelled: self.engine.stream(prompt, params, cancelled))

    async def _generate_batched(self, prompt: list[int], params: SamplingParams,
                                deadline: float | None) -> Completion:
        control = RowControl(deadline=deadline)
        try:
            return await self.generate_batches((prompt, params, control), deadline)
        except BaseException:
            control.cancelled.set()  # the caller went away: its row stops at the next step
            raise

    async def _generate_batch(self, items: list[_Item]) -> list[Completion | Exception]:
        prompts, params, controls = (list(column) for column in zip(*items))
        with self.stats.model_call("generate", len(items)):
            outcomes = await self.run_model(self.engine.generate_batch, prompts, params, controls)
        for outcome in outcomes:
            if isinstance(outcome, DeadlineExceeded):
                self.stats.count("deadline_aborted")
            elif isinstance(outcome, Completion) and outcome.finish_reason == "abort":
                self.stats.count("cancelled")  # mid-decode
        return outcomes

    def _encode(self, messages: list[dict]) -> list[int]:
        prompt = self.engine.encode_chat(messages)
        limit = self.settings.engine.max_prompt_tokens
        if len(prompt) > limit:
            raise InvalidRequest(f"the prompt has {len(prompt)} tokens; the limit is {limit}",
                             "messages")
        return prompt

    def _count_tokens(self, completion: Completion) -> None:
        metrics.add(metrics.tokens(), completion.prompt_tokens, {"kind": "prompt"})
        metrics.add(metrics.tokens(), completion.completion_tokens, {"kind": "completion"})


async def _before(deadline: float | None, awaitable: Any) -> Any:
    """`awaitable`'s result, or DeadlineExceeded (the awaitable cancelled) once it passes."""
    try:
        return await asyncio.wait_for(awaitable, remaining(deadline))
    except TimeoutError:
        raise DeadlineExceeded("the completion") from None
