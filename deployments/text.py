"""Text generation deployment: batched completions, token-by-token streaming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from ray import serve

from deployments.engines import load_text_engine
from deployments.engines.text_base import Completion, SamplingParams
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

    async def generate(self, messages: list[dict], params: SamplingParams) -> dict[str, Any]:
        prompt = self._encode(messages)
        completion: Completion = await self._generate_batch((prompt, params))
        self._count_tokens(completion)
        return asdict(completion)

    async def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[dict]:
        """Yields {"text": delta} items, then one {"completion": {...}} item."""
        prompt = self._encode(messages)
        deltas = iterate_in_thread(lambda cancelled: self.engine.stream(prompt, params, cancelled))
        finished = False
        try:
            async for delta in deltas:
                if delta.completion is not None:
                    finished = True
                    self._count_tokens(delta.completion)
                    yield {"completion": asdict(delta.completion)}
                elif delta.text:
                    yield {"text": delta.text}
        finally:
            if not finished:  # cancelled because the client disconnected
                self.stats.count("stream_aborted")

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _generate_batch(self, items: list[tuple[list[int], SamplingParams]]) -> list:
        self.stats.record("generate", len(items))
        prompts = [prompt for prompt, _ in items]
        params = [sampling for _, sampling in items]
        return await asyncio.to_thread(self.engine.generate_batch, prompts, params)

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
