"""The transformers engine served with the same async `generate` and `stream` as the engines
that batch inside themselves (vLLM, TensorRT-LLM).

Every request, streamed or not, becomes a row of the engine's scheduler, which runs one step at
a time on the replica's model thread for as long as it has rows: a request joins the running
batch at the next step (no batch window to wait out while the model is free) and leaves it when
it finishes; a stream and a whole completion share decode steps. A caller that goes away, or a
deadline that passes, ends its row at the next step while the rest go on. Each step is counted
in the replica's batch statistics ("decode": rows per step; "prefill": prompts per step).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from deployments.core.errors import DeadlineExceeded
from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.generation import Completion, RowControl, SamplingParams, StreamDelta
from deployments.engines.scheduler import StepReport
from deployments.engines.text_base import StepTextEngine
from deployments.replicas import metrics
from deployments.replicas.batch_stats import BatchStats

logger = logging.getLogger(__name__)


class ScheduledTextEngine:
    batches_itself = True  # to the deployment, it is one more TextEngine
    by_class = by_fair_share = True  # its waiting list's order (engines/waiting_queue.py)

    def __init__(self, engine: StepTextEngine, run_model: Callable[..., Awaitable[Any]],
                 stats: BatchStats) -> None:
        self.engine = engine
        self.scheduler = engine.scheduler
        self.by_objective = self.scheduler.waiting.policy == "slo"
        self.run_model = run_model
        self.batch_stats = stats
        self._driver: asyncio.Task | None = None
        self._finished: list[tuple[asyncio.Future, Completion | Exception]] = []

    # The batcher setters, so the replica's reconfigure (user_config) sizes the running batch.
    def set_max_batch_size(self, size: int) -> None:
        self.scheduler.max_running = size

    def set_batch_wait_timeout_s(self, seconds: float) -> None:
        """No batch window: a request joins the running batch at the next decode step."""

    def set_policy(self, policy: str) -> None:
        """The scheduler's order was fixed at start (text.engine.queue_policy); the live
        policy decides the replica's admission (replicas/first_token_forecast.py)."""

    def encode_chat(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        if tools:
            return self.engine.encode_chat(messages, tools)
        return self.engine.encode_chat(messages)

    def encode_text(self, prompt: str) -> list[int]:
        return self.engine.encode_text(prompt)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion:
        control = RowControl(deadline=deadline, objective=objective, share=share)
        try:
            return await self._submit(prompt, params, control)
        finally:
            control.cancelled.set()  # a no-op once finished; else its row stops at next step

    async def stream(self, prompt: list[int], params: SamplingParams,
                     deadline: float | None = None, objective: float | None = None,
                     share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[StreamDelta | None] = asyncio.Queue()
        control = RowControl(deadline=deadline, objective=objective, share=share,
                             on_text=lambda delta: loop.call_soon_threadsafe(
                                 pieces.put_nowait, delta))
        row = asyncio.ensure_future(self._submit(prompt, params, control))
        # After every piece: the thread queued those before the row's outcome came back.
        row.add_done_callback(lambda _: pieces.put_nowait(None))
        try:
            while (delta := await pieces.get()) is not None:
                yield delta
            yield StreamDelta("", await row)
        finally:
            control.cancelled.set()
            row.cancel()

    def stats(self) -> dict[str, int]:
        cache = self.engine.prefix_cache
        return {"running": len(self.scheduler.running), "waiting": len(self.scheduler.waiting),
                **({f"prefix_cache_{k}": v for k, v in cache.stats().items()} if cache else {})}

    async def check_health(self) -> None:
        return None  # the replica's own check watches the model thread

    async def _submit(self, prompt: list[int], params: SamplingParams,
                      control: RowControl) -> Completion:
        outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        # Settled by the driver after the step that finished the row, its stats recorded.
        self.scheduler.add(self.engine.new_sequence(
            prompt, params, control, lambda result: self._finished.append((outcome, result))))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        return await outcome

    async def _drive(self) -> None:
        """Steps the scheduler on the model thread while it has rows."""
        while self.scheduler.has_work():
            started = time.perf_counter()
            try:
                report = await self.run_model(self.scheduler.step)
            except Exception as error:  # a bug outside the forward passes: fail, never hang
                logger.exception("a scheduler step failed")
                self.scheduler.fail_all(error)
                report = None
            if report is not None:
                self._record(report, time.perf_counter() - started)
            finished, self._finished = self._finished, []
            for future, result in finished:
                self._count(result)
                _settle(future, result)

    def _record(self, report: StepReport, seconds: float) -> None:
        metrics.queue_length().set(len(self.scheduler.waiting), tags={"method": "generate"})
        if report.prefilled:
            self.batch_stats.record("prefill", report.prefilled)
        if report.decoded:
            self.batch_stats.record("decode", report.decoded)
            if 0 < report.streamed < report.decoded:
                self.batch_stats.count("decode_steps_mixing_streams_and_whole")
        self.batch_stats.busy("decode" if report.decoded else "prefill", seconds)

    def _count(self, result: Completion | Exception) -> None:
        if isinstance(result, DeadlineExceeded):
            self.batch_stats.count("deadline_aborted")
        elif isinstance(result, Completion) and result.finish_reason == "abort":
            self.batch_stats.count("cancelled")  # its caller left: ended at a step


def _settle(future: asyncio.Future, result: Completion | Exception) -> None:
    if future.done():
        return  # its caller went away
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)
