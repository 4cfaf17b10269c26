"""/v1/completions streamed: one text stream per prompt (serve_app/token_stream.py), their
events sent as OpenAI's text_completion chunks in the order they come, each naming its choice
(prompt-major: prompt i's choice j is `i * n + j`, as vLLM numbers them) and carrying its
tokens' legacy logprobs when asked (serve_app/legacy_logprobs.py); then, when asked, one chunk
with the usage of all of them, and [DONE].

Every stream is opened before the response starts, so an error before any output (the prompt
too long, the group at capacity) is still an HTTP status, and the streams already opened are
cancelled. A stream that fails later sends its error in-band and the others go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, TypeVar

from deployments.core.call_protocol import StreamEnd, TokenDelta
from deployments.core.errors import ServeError
from deployments.core.generation import SamplingParams
from serve_app import protocol
from serve_app.http import sse_event
from serve_app.http_errors import error_body
from serve_app.legacy_logprobs import LegacyLogprobs
from serve_app.request_metrics import TokenClock
from serve_app.token_stream import TokenStream

if TYPE_CHECKING:  # its Ray imports stay out of what only calls it
    from serve_app.calls import ReplicaGroup

T = TypeVar("T")


async def open_streams(group: ReplicaGroup, prompts: list[str], params: SamplingParams,
                       deadline: float | None, idle_timeout_s: float,
                       clock: TokenClock) -> list[TokenStream]:
    """One stream per prompt, each started; if one fails to start, the others are cancelled
    and its error raised."""
    opened = await asyncio.gather(
        *(TokenStream.open(group, prompt, params, deadline, idle_timeout_s, clock,
                           alongside=len(prompts) > 1)
          for prompt in prompts), return_exceptions=True)
    failed = [item for item in opened if isinstance(item, BaseException)]
    if failed:
        for stream in opened:
            if isinstance(stream, TokenStream):
                stream.rest.cancel()
        raise failed[0]
    return list(opened)


class CompletionChunks:
    """The chunks of one streamed /v1/completions of `prompts` prompts, `n` choices each;
    `choice(i)` renders stream i's events (token_stream.Renderer), and the last stream to end
    carries the final timing. `logprobs`: the request's (None: not asked for)."""

    def __init__(self, request_id: str, model: str, prompts: int, include_usage: bool,
                 final_timing: Callable[[], dict[str, str]], n: int = 1,
                 logprobs: int | None = None) -> None:
        self.request_id, self.model, self.n = request_id, model, n
        self.open, self.include_usage, self.final_timing = prompts, include_usage, final_timing
        self.prompt_tokens = self.completion_tokens = 0
        self.logprobs = (None if logprobs is None
                         else [LegacyLogprobs(logprobs) for _ in range(prompts * n)])

    def text(self, index: int, text: str, finish_reason: str | None = None,
             entries: list[dict] | None = None) -> dict:
        logprobs = None
        if self.logprobs is not None:
            logprobs = self.logprobs[index].shaped(entries or [])
        return protocol.text_completion_chunk(self.request_id, self.model, index, text,
                                              finish_reason, logprobs=logprobs)

    def choice(self, prompt: int) -> _Choice:
        return _Choice(self, prompt)

    def indices(self, prompt: int) -> range:
        """The choices of prompt `prompt`."""
        return range(prompt * self.n, (prompt + 1) * self.n)

    def ended(self, end: StreamEnd | None) -> dict[str, str]:
        """Counts a choice's end (None: it failed); the final timing once all have ended."""
        if end is not None:
            self.prompt_tokens += end.prompt_tokens
            self.completion_tokens += end.completion_tokens
        self.open -= 1
        return self.final_timing() if self.open == 0 else {}

    def usage(self) -> str:
        return sse_event(protocol.text_completion_chunk(
            self.request_id, self.model, None,
            usage_=protocol.usage(self.prompt_tokens, self.completion_tokens)))


class _Choice:
    """One prompt's stream: its choices' chunks."""

    def __init__(self, chunks: CompletionChunks, prompt: int) -> None:
        self.chunks, self.indices = chunks, chunks.indices(prompt)

    def token(self, delta: TokenDelta) -> str:
        return sse_event(self.chunks.text(self.indices[delta.index], delta.text,
                                          entries=delta.logprobs))

    def end(self, end: StreamEnd) -> str:
        """Each choice's finish reason; the last carries the final timing, if any."""
        final = self.chunks.ended(end)
        reasons = end.every_finish_reason()
        events = [self.chunks.text(index, "", reason)
                  for index, reason in zip(self.indices, reasons, strict=True)]
        events[-1] = {**events[-1], **final}
        return "".join(sse_event(event) for event in events)

    def error(self, error: ServeError) -> str:
        self.chunks.ended(None)
        return sse_event(error_body(error))


async def completion_events(streams: list[TokenStream], echoes: list[str],
                            chunks: CompletionChunks) -> AsyncIterator[str]:
    """The whole SSE body: each choice's echoed prompt (if any), the streams' events as they
    come, the usage when asked, [DONE]."""
    for prompt, echo in enumerate(echoes):
        for index in chunks.indices(prompt) if echo else ():
            yield sse_event(chunks.text(index, echo))
    async for event in merged([stream.relay(chunks.choice(i))
                               for i, stream in enumerate(streams)]):
        yield event
    if chunks.include_usage:
        yield chunks.usage()
    yield sse_event("[DONE]")


async def merged(iterators: list[AsyncIterator[T]]) -> AsyncIterator[T]:
    """The items of all `iterators` in the order they come; closing this cancels the rest of
    each (a relay cancels its replica's work then)."""
    if len(iterators) == 1:
        async for item in iterators[0]:
            yield item
        return
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def drain(iterator: AsyncIterator[T]) -> None:
        try:
            async for item in iterator:
                await queue.put(item)
        finally:
            queue.put_nowait(finished)

    tasks = [asyncio.create_task(drain(iterator)) for iterator in iterators]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is finished:
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
