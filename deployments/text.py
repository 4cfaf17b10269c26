"""Text generation deployment: batched completions, token-by-token streaming.

Engines that batch continuously themselves (vLLM, TensorRT-LLM) get every request as it comes;
the others (transformers) get batches gathered here by @serve.batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments.engines import load_text_engine
from deployments.engines.text_base import Completion, SamplingParams, StreamDelta
from deployments.replica_base import BatchedReplica
from deployments.thread_bridge import iterate_in_thread
from serve_app import metrics
from serve_app.config import TextSettings
from serve_app.errors import ServeError


@serve.deployment
class TextGenerator(BatchedReplica):
    batched_methods = ("_generate_batch",)

    def __init__(self, settings: dict[str, Any], model_dir: str) -> None:
        super().__init__()
        self.settings = TextSettings.model_validate(settings)
        self.engine = load_text_engine(self.settings.engine, model_dir)

    def engine_stats(self) -> dict[str, int]:
        """Request counts of an engine that batches itself (vLLM, TensorRT-LLM); else {}."""
        return self.engine.stats() if self.engine.batches_itself else {}

    async def check_health(self) -> None:
        check = getattr(self.engine, "check_health", None)
        if check is not None:
            await check()

    async def generate(self, messages: list[dict], params: SamplingParams) -> dict[str, Any]:
        prompt = self._encode(messages)
        if self.engine.batches_itself:  # continuous batching: straight to the engine
            completion: Completion = await self.engine.generate(prompt, params)
        else:
            completion = await self._generate_batch((prompt, params))
        self._count_tokens(completion)
        return asdict(completion)

    async def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[dict]:
        """Yields {"text": delta} items, then one {"completion": {...}} item."""
        prompt = self._encode(messages)
        finished = False
        try:
            async for delta in self._deltas(prompt, params):
                if delta.completion is not None:
                    finished = True
                    self._count_tokens(delta.completion)
                    yield {"completion": asdict(delta.completion)}
                elif delta.text:
                    yield {"text": delta.text}
        finally:
            if not finished:  # cancelled because the client disconnected
                self.stats.count("stream_aborted")

    def _deltas(self, prompt: list[int], params: SamplingParams) -> AsyncIterator[StreamDelta]:
        if self.engine.batches_itself:
            return self.engine.stream(prompt, params)
        return iterate_in_thread(lambda cancelled: self.engine.stream(prompt, params, cancelled))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _generate_batch(self, items: list[tuple[list[int], SamplingParams]]) -> list:
        prompts = [prompt for prompt, _ in items]
        params = [sampling for _, sampling in items]
        with self.stats.model_call("generate", len(items)):
            return await self.run_model(self.engine.generate_batch, prompts, params)

    def _encode(self, messages: list[dict]) -> list[int]:
        prompt = self.engine.encode_chat(messages)
        limit = self.settings.engine.max_prompt_tokens
        if len(prompt) > limit:
            raise ServeError(400, f"the prompt has {len(prompt)} tokens; the limit is {limit}",
                             "messages")
        return prompt

    def _count_tokens(self, completion: Completion) -> None:
        metrics.tokens().inc(completion.prompt_tokens, tags={"kind": "prompt"})
        metrics.tokens().inc(completion.completion_tokens, tags={"kind": "completion"})
