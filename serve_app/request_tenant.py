"""The tenant a request is served for, and what its replica calls used.

Set once when the ingress admits the request (a context variable, like its timing and its
objective: the pipeline's stages run in tasks that inherit it). serve_app/calls.py reads it to
put the tenant, its priority and its weight in every call's context, and adds to its usage what
each reply shows: a completion's or a stream's tokens, the images an image embedding or a label
call looked at, the seconds of the audio a transcription heard. Only replica work counts: an answer
from the response cache uses none. A stream that ends without its last event (the client went
away, the stream failed) counts one token per piece of text it sent.
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


@dataclass
class Usage:
    tokens: float = 0.0  # prompt + completion; a text embedding's words
    images: float = 0.0
    audio_seconds: float = 0.0

    def add(self, other: Usage) -> None:
        self.tokens += other.tokens
        self.images += other.images
        self.audio_seconds += other.audio_seconds

    def by_limit(self) -> dict[str, float]:
        """The usage by the name of the limit it counts against."""
        return {"tokens": self.tokens, "images": self.images,
                "audio-seconds": self.audio_seconds}


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


def usage_of(method: str, args: tuple, reply: Any) -> Usage:
    """What one replica call's reply shows it used."""
    if isinstance(reply, CompletionReply | StreamEnd):
        return Usage(tokens=reply.prompt_tokens + reply.completion_tokens)
    if isinstance(reply, TranscriptReply):
        return Usage(audio_seconds=reply.duration)
    if isinstance(reply, LabelsReply):
        return Usage(images=1)
    if isinstance(reply, EmbeddingsReply):
        if method == "embed_images":
            return Usage(images=len(reply.vectors))
        if method == "embed_texts":  # words, as the route's usage reports them
            return Usage(tokens=sum(len(text.split()) for text in args[0]))
    return Usage()


class StreamMeter:
    """What a text stream used, for its tenant: the StreamEnd's tokens, or, for a stream
    stopped before its end, one token per piece of text it sent."""

    def __init__(self, account: RequestTenant | None) -> None:
        self.account, self.pieces, self.counted = account, 0, False

    def seen(self, item: Any) -> None:
        if isinstance(item, TokenDelta):
            self.pieces += 1
        elif isinstance(item, StreamEnd):
            self._count(usage_of("stream", (), item))

    def stopped(self) -> None:
        self._count(Usage(tokens=self.pieces))

    def _count(self, usage: Usage) -> None:
        if self.account is not None and not self.counted:
            self.account.usage.add(usage)
        self.counted = True
