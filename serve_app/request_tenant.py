"""The tenant a request is served for, and what its replica calls used.

Set once when the ingress admits the request (a context variable, like its timing and its
objective: the pipeline's stages run in tasks that inherit it). serve_app/calls.py reads it to
put the tenant, its priority and its weight in every call's context, and adds to its usage what
each reply shows: a completion's or a stream's prompt and completion tokens, the images an image
embedding or a label call looked at, the seconds of the audio a transcription heard, and the
seconds its replica's model worked on the call (the reply's stages: MODEL_STAGES). Only replica
work counts: an answer from the response cache uses none. A stream that ends without its last
event (the client went away, the stream failed) counts one completion token per piece of text it
sent, and no model seconds (they come with that last event).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from deployments.core.call_protocol import (
    CompletionReply,
    EmbeddingsReply,
    LabelsReply,
    Priority,
    StreamEnd,
    TokenDelta,
    TranscriptReply,
)
from serve_app.tenants import Tenant

# The stages of a reply in which its replica's model worked on the call: a batched call's
# "model" (the whole batch's call, for each of its rows), a text stream's "first-token" (the
# engine's queue and prefill) and "decode" (deployments/replicas/timed_calls.py).
MODEL_STAGES = frozenset({"model", "first-token", "decode"})


@dataclass
class Usage:
    prompt_tokens: float = 0.0  # a text embedding's words count here
    completion_tokens: float = 0.0
    images: float = 0.0
    audio_seconds: float = 0.0
    model_seconds: dict[str, float] = field(default_factory=dict)  # replica group -> seconds

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.images += other.images
        self.audio_seconds += other.audio_seconds
        for group, seconds in other.model_seconds.items():
            self.model_seconds[group] = self.model_seconds.get(group, 0.0) + seconds

    def by_limit(self) -> dict[str, float]:
        """The usage by the name of the limit it counts against."""
        return {"tokens": self.tokens, "images": self.images,
                "audio-seconds": self.audio_seconds}

    def counts(self) -> dict[str, float]:
        """Every count by its name in the usage report (serve_app/usage_totals.py), model
        seconds as `model_seconds.GROUP`; zeros left out."""
        counts = {"prompt_tokens": self.prompt_tokens,
                  "completion_tokens": self.completion_tokens,
                  "images": self.images, "audio_seconds": self.audio_seconds,
                  **{f"model_seconds.{group}": seconds
                     for group, seconds in self.model_seconds.items()}}
        return {name: value for name, value in counts.items() if value > 0}


@dataclass
class RequestTenant:
    tenant: Tenant | None  # None: an anonymous API
    usage: Usage = field(default_factory=Usage)

    @property
    def name(self) -> str | None:
        return None if self.tenant is None else self.tenant.name

    @property
    def priority(self) -> Priority:
        return "interactive" if self.tenant is None else self.tenant.priority

    @property
    def weight(self) -> float:
        return 1.0 if self.tenant is None else self.tenant.weight


_current: ContextVar[RequestTenant | None] = ContextVar("mmserve_request_tenant", default=None)


def start(tenant: Tenant | None) -> RequestTenant:
    """Makes `tenant` the tenant of the request this task serves, with nothing used yet."""
    request = RequestTenant(tenant)
    _current.set(request)
    return request


def current() -> RequestTenant | None:
    """The tenant of the request this task works for; None outside an admitted request."""
    return _current.get()


def usage_of(group: str, method: str, args: tuple, reply: Any) -> Usage:
    """What one call to `group` shows it used: its reply's counts and model seconds."""
    usage = _counts_of(method, args, reply)
    seconds = sum(length for name, _, length in getattr(reply, "stages", ())
                  if name in MODEL_STAGES)
    if seconds > 0:
        usage.model_seconds[group] = seconds
    return usage


def _counts_of(method: str, args: tuple, reply: Any) -> Usage:
    if isinstance(reply, CompletionReply | StreamEnd):
        return Usage(prompt_tokens=reply.prompt_tokens,
                     completion_tokens=reply.completion_tokens)
    if isinstance(reply, TranscriptReply):
        return Usage(audio_seconds=reply.duration)
    if isinstance(reply, LabelsReply):
        return Usage(images=1)
    if isinstance(reply, EmbeddingsReply):
        if method == "embed_images":
            return Usage(images=len(reply.vectors))
        if method == "embed_texts":  # words, as the route's usage reports them
            return Usage(prompt_tokens=sum(len(text.split()) for text in args[0]))
    return Usage()


class StreamMeter:
    """What a text stream to `group` used, for its tenant: the StreamEnd's tokens and model
    seconds, or, for a stream stopped before its end, one token per piece of text it sent."""

    def __init__(self, account: RequestTenant | None, group: str) -> None:
        self.account, self.group, self.pieces, self.counted = account, group, 0, False

    def seen(self, item: Any) -> None:
        if isinstance(item, TokenDelta):
            self.pieces += 1
        elif isinstance(item, StreamEnd):
            self._count(usage_of(self.group, "stream", (), item))

    def stopped(self) -> None:
        self._count(Usage(completion_tokens=self.pieces))

    def _count(self, usage: Usage) -> None:
        if self.account is not None and not self.counted:
            self.account.usage.add(usage)
        self.counted = True
