"""What a text generation takes and gives back, shared by the engines, the text replica and
the front end: sampling settings, a finished completion, a streamed delta, and the control
through which one row of a batch is ended early."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from deployments.core.deadline import expired
from deployments.core.fair_share import ANONYMOUS, Share


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings; one batch may mix requests with different settings."""

    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1  # choices, each sampled on its own from the same prompt
    logprobs: bool = False  # each token's logprob, and `top_logprobs` alternatives
    top_logprobs: int = 0
    presence_penalty: float = 0.0  # OpenAI's: subtracted once a token has appeared
    frequency_penalty: float = 0.0  # subtracted per time a token has appeared
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    # The JSON Schema (JSON text) the output must match (deployments/core/json_grammar.py);
    # None: free text.
    json_schema: str | None = None
    # The function tools the prompt offers the model (OpenAI's `tools`, JSON text), rendered
    # by the engine with its chat template (deployments/engines/tool_prompt.py); None: none.
    tools: str | None = None

    def tool_list(self) -> list[dict] | None:
        return json.loads(self.tools) if self.tools else None


@dataclass
class Completion:
    """One choice's text; the first choice also carries the others (`other_choices`) when the
    request asked for several. `logprobs` (asked for: one entry per completion token, in
    OpenAI's ChatCompletionTokenLogprob shape) is None when not asked for."""

    text: str
    prompt_tokens: int
    completion_tokens: int  # this choice's
    finish_reason: str  # "stop" | "length" | "abort"
    logprobs: list[dict] | None = None
    other_choices: list[Completion] = field(default_factory=list)

    @property
    def choices(self) -> list[Completion]:
        return [self, *self.other_choices]

    @property
    def all_completion_tokens(self) -> int:
        """Every choice's completion tokens: what the request used."""
        return sum(choice.completion_tokens for choice in self.choices)


@dataclass
class RowControl:
    """What may end one row of a batch early: its caller going away (`cancelled`, set from
    another thread) or its absolute wall-clock `deadline` passing. A streamed row also has
    `on_text`, which the engine calls (from its thread) with each piece of text as it becomes
    final (a StreamDelta: its text, its choice's index, its tokens' logprobs). `objective`
    (absolute wall-clock seconds, None: none) places the row in an "slo" waiting list
    (deployments/engines/waiting_queue.py), after its class and its tenant's fair share
    (`share`); neither ever ends the row."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None
    objective: float | None = None
    share: Share = ANONYMOUS
    on_text: Callable[[StreamDelta], None] | None = None
    streamed_chars: int = 0  # handed to on_text so far, kept if the row is run again

    def stop_reason(self) -> str | None:
        """Why the row must stop now: "abort" once cancelled, "deadline" once the deadline
        has passed; None while it may go on."""
        if self.cancelled.is_set():
            return "abort"
        return "deadline" if expired(self.deadline) else None


@dataclass
class StreamDelta:
    """A piece of streamed text of choice `index`, with the logprobs of its tokens when they
    were asked for; the last one of a stream carries the finished completion (every choice)."""

    text: str
    completion: Completion | None = field(default=None)
    index: int = 0
    logprobs: list[dict] | None = None
