"""The baseline's text model: each request is one row of the engine's blocking
`generate_batch`, run in the web server's threadpool; nothing puts two requests in one batch.

It needs nothing of the engine but `encode_chat` and `generate_batch(prompts, params, controls)`
(types in deployments/core/generation.py). A stream's text comes from its row's `on_text`, which
the engine calls on the worker thread; a caller that goes away sets its row's `cancelled`, and
the engine ends the row at its next step while the thread is freed. The objective is ignored:
the threadpool takes requests in arrival order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from deployments.core.fair_share import ANONYMOUS, Share
from deployments.core.generation import Completion, RowControl, SamplingParams, StreamDelta


class OneRowTextEngine:
    """The TextEngine contract (deployments/engines/text_base.py) over one blocking engine."""

    batches_itself = True  # to the text replica: every request straight to generate / stream
    by_objective = by_class = by_fair_share = False  # the threadpool takes them as they come

    def __init__(self, engine: Any, run_model: Callable[..., Awaitable[Any]]) -> None:
        if not callable(getattr(engine, "generate_batch", None)):
            raise ValueError("the baseline calls a text engine's blocking generate_batch; "
                             f"{type(engine).__name__} has none (use the transformers engine)")
        self.engine = engine
        self.run_model = run_model
        self._rows: set[asyncio.Task] = set()  # held until their thread returns

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return self.engine.encode_chat(messages)

    def encode_text(self, prompt: str) -> list[int]:
        return self.engine.encode_text(prompt)

    async def generate(self, prompt: list[int], params: SamplingParams,
                       deadline: float | None = None, objective: float | None = None,
                       share: Share = ANONYMOUS) -> Completion:
        control = RowControl(deadline=deadline)
        try:  # shielded: a caller that leaves need not wait for the thread to return
            return await asyncio.shield(self._start(prompt, params, control))
        finally:
            control.cancelled.set()  # a no-op once the row has finished

    async def stream(self, prompt: list[int], params: SamplingParams,
                     deadline: float | None = None, objective: float | None = None,
                     share: Share = ANONYMOUS) -> AsyncIterator[StreamDelta]:
        loop = asyncio.get_running_loop()
        arrivals: asyncio.Queue[StreamDelta | BaseException] = asyncio.Queue()
        control = RowControl(deadline=deadline, on_text=lambda delta: loop.call_soon_threadsafe(
            arrivals.put_nowait, delta))
        # The row's end comes after its text: the thread scheduled every piece before it returned.
        self._start(prompt, params, control).add_done_callback(
            lambda row: arrivals.put_nowait(_last_delta(row)))
        try:
            while not isinstance(delta := await arrivals.get(), BaseException):
                yield delta
                if delta.completion is not None:
                    return
            raise delta
        finally:
            control.cancelled.set()

    def stats(self) -> dict[str, int]:
        return {"rows_running": len(self._rows)}

    async def check_health(self) -> None:
        return None

    def _start(self, prompt: list[int], params: SamplingParams,
               control: RowControl) -> asyncio.Task:
        row = asyncio.ensure_future(self._one_row(prompt, params, control))
        self._rows.add(row)
        row.add_done_callback(self._forget)
        return row

    def _forget(self, row: asyncio.Task) -> None:
        self._rows.discard(row)
        if not row.cancelled():
            row.exception()  # retrieved: a caller that left never awaits it

    async def _one_row(self, prompt: list[int], params: SamplingParams,
                       control: RowControl) -> Completion:
        [outcome] = await self.run_model(self.engine.generate_batch, [prompt], [params],
                                         [control])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _last_delta(row: asyncio.Task) -> StreamDelta | BaseException:
    if row.cancelled():
        return asyncio.CancelledError()
    error = row.exception()
    return error if error is not None else StreamDelta("", row.result())
