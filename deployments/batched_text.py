"""A text engine that decodes one batch per call (transformers), served with the same async
`generate` and `stream` as the engines that batch themselves (vLLM, TensorRT-LLM).

Every request, streamed or not, is one row of a batch formed by the replica's DynamicBatcher
and decoded on its model thread: a stream and a whole completion share model calls. A streamed
row gets its text after each decode step (RowControl.on_text); a caller that goes away, or a
deadline that passes, ends its row at the next step while the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from deployments.batch_stats import BatchStats
from deployments.batcher import DynamicBatcher
from deployments.engines.text_base import BatchTextEngine
from serve_app.core.errors import DeadlineExceeded
from serve_app.core.generation import Completion, RowControl, SamplingParams, StreamDelta

_Row = tuple[list[int], SamplingParams, RowControl]


class BatchedTextEngine:
    batches_itself = True  # to the deployment, it is one more TextEngine

    def __init__(self, engine: BatchTextEngine, run_model: Callable[..., Awaitable[Any]],
                 stats: BatchStats) -> None:
        self.engine = engine
        self.run_model = run_model
        self.batch_stats = stats
        self.batches = DynamicBatcher(self._run_batch, on_event=stats.count)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return self.engine.encode_chat(messages)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None) -> Completion:
        control = RowControl(deadline=deadline)
        try:
            return await self.batches((prompt, params, control), deadline)
        except BaseException:
            control.cancelled.set()  # the caller went away: its row stops at the next step
            raise

    async def stream(self, prompt: list[int], params: SamplingParams,
                     deadline: float | None = None) -> AsyncIterator[StreamDelta]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        control = RowControl(deadline=deadline, on_text=lambda text: loop.call_soon_threadsafe(
            pieces.put_nowait, text))
        row = asyncio.ensure_future(self.batches((prompt, params, control), deadline))
        # After every piece: the thread queued those before the batch's result came back.
        row.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (text := await pieces.get()) is not None:
                yield StreamDelta(text)
            yield StreamDelta("", await row)
        finally:
            control.cancelled.set()
            row.cancel()

    def stats(self) -> dict[str, int]:
        return {}

    async def check_health(self) -> None:
        return None  # the replica's own check watches the model thread

    async def _run_batch(self, rows: list[_Row]) -> list[Completion | Exception]:
        prompts, params, controls = (list(column) for column in zip(*rows))
        with self.batch_stats.model_call("generate", len(rows)):
            outcomes = await self.run_model(self.engine.generate_batch, prompts, params,
                                            controls)
        for outcome in outcomes:
            if isinstance(outcome, DeadlineExceeded):
                self.batch_stats.count("deadline_aborted")
            elif isinstance(outcome, Completion) and outcome.finish_reason == "abort":
                self.batch_stats.count("cancelled")  # mid-decode
        return outcomes
