"""The call protocol between the front end and the replicas: what goes with every call (a
CallContext) and what comes back (a typed reply, or for a text stream its typed events).

Every replica method takes the context as its last argument and answers with a Reply; each
reply carries the stages of the call (`stages`: name, epoch start, seconds), filled by the
replica when the context asks for timing (deployments/replicas/timed_calls.py) and left empty
otherwise. A text stream yields TokenDelta events, then one StreamEnd with the usage, the
finish reason and the stages. All of them are small plain dataclasses, pickled across Ray.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from deployments.core.fair_share import Priority, Share

Stages = list[tuple[str, float, float]]  # (name, epoch start, seconds)


@dataclass(frozen=True)
class CallContext:
    """What travels with one call: the request's absolute wall-clock deadline (None: none),
    whether the replica should report the stages of its time, the request's objective
    (absolute wall-clock time its route's SLO wants its first token or answer by; None: none),
    and the tenant it is served for (None: an anonymous API) with that tenant's priority and
    weight (its class and its fair share in the replicas' queues: deployments/core/fair_share.py).
    """

    deadline: float | None = None
    timed: bool = False
    objective: float | None = None
    tenant: str | None = None
    priority: Priority = "interactive"
    weight: float = 1.0

    @property
    def share(self) -> Share:
        """Whose the call is, to a replica's queue."""
        return Share(self.priority, self.tenant, self.weight)


NO_CONTEXT = CallContext()


@dataclass(frozen=True)
class SpeechRequest:
    """What a speech call asks of its audio: its language (None: detected), the task
    (transcribe, or translate to English) and whether to time each word."""

    language: str | None = None
    task: Literal["transcribe", "translate"] = "transcribe"
    words: bool = False


@dataclass
class Reply:
    """A replica's answer; `stages` is where the call's time went, when it was asked."""

    stages: Stages = field(default_factory=list, kw_only=True)

    def payload(self) -> dict[str, Any]:
        """The answer without its stages, as plain data (what the response cache keeps)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "stages"}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Reply:
        return cls(**payload)


@dataclass
class ReadyReply(Reply):
    """The replica has loaded its model."""


@dataclass
class ModelInfoReply(Reply):
    """What the engine chose at start: {"dtype": ..., "dtype_reason": ...} (compute_type and
    compute_type_reason for Whisper)."""

    fields: dict[str, str]


@dataclass
class EmbeddingsReply(Reply):
    vectors: list[Any]  # one numpy vector per input, in order


@dataclass
class LabelsReply(Reply):
    labels: list[dict[str, Any]]  # [{label, score}], most likely first


@dataclass
class TranscriptReply(Reply):
    text: str
    language: str
    language_probability: float
    duration: float
    segments: list[dict[str, Any]]  # [{id, start, end, text, seek, tokens, avg_logprob, ...}]
    words: list[dict[str, Any]] = field(default_factory=list)  # [{word, start, end, ...}]


@dataclass
class CompletionReply(Reply):
    """The first choice (`text`, `finish_reason`, `logprobs`: OpenAI's token logprob entries
    when asked for), the others when the request asked for several (`other_choices`, each
    {text, finish_reason, logprobs}), and the tokens of all of them (`completion_tokens`)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "abort"
    logprobs: list[dict] | None = None
    other_choices: list[dict] = field(default_factory=list)

    def choices(self) -> list[dict]:
        """Every choice as {text, finish_reason, logprobs}, in index order."""
        first = {"text": self.text, "finish_reason": self.finish_reason,
                 "logprobs": self.logprobs}
        return [first, *self.other_choices]


@dataclass
class TokenDelta:
    """A piece of a text stream's output: choice `index`'s text, and its tokens' logprobs
    when they were asked for."""

    text: str
    index: int = 0
    logprobs: list[dict] | None = None


@dataclass
class StreamEnd(Reply):
    """The last event of a text stream: the tokens of every choice, and each choice's finish
    reason (`finish_reasons`, when there are several; else `finish_reason` alone)."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    finish_reasons: list[str] = field(default_factory=list)

    def every_finish_reason(self) -> list[str]:
        return self.finish_reasons or [self.finish_reason]


TextEvent = TokenDelta | StreamEnd
