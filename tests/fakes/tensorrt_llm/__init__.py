"""A fake of tensorrt_llm's LLM API: `LLM(**kwargs)`, `generate_async(prompt, sampling,
streaming=...)` returning an async-iterable request with `finished` and `abort()`, and
`SamplingParams`. It "generates" the prompt's own tokens back, one per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


@dataclass
class CompletionOutput:
    text: str = ""
    text_diff: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]
    finished: bool


class Request:
    def __init__(self, prompt: list[int], sampling: SamplingParams, streaming: bool) -> None:
        self.prompt, self.sampling, self.streaming = prompt, sampling, streaming
        self.finished = False
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    async def __aiter__(self):
        piece = CompletionOutput()
        steps = min(self.sampling.max_tokens, len(self.prompt))
        for step in range(steps):
            if self.aborted:
                return
            token = self.prompt[step]
            piece.token_ids.append(token)
            piece.text_diff = f"<{token}>"
            piece.text += piece.text_diff
            if step == steps - 1:
                self.finished = True
                piece.finish_reason = "length"
            if self.streaming or self.finished:
                yield RequestOutput([piece], self.finished)


class LLM:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.requests: list[Request] = []

    def generate_async(self, prompt: list[int], sampling: SamplingParams,
                       streaming: bool = False) -> Request:
        if sampling.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        request = Request(prompt, sampling, streaming)
        self.requests.append(request)
        return request
