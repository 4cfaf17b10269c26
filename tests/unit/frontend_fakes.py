"""The front end's routes in process, over fake replica groups: what the app does with a
request before and after its replicas, without Ray (serve_app imports Ray only in calls.py,
which the front end names for types alone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.testclient import TestClient

from deployments.core.call_protocol import (
    CompletionReply,
    EmbeddingsReply,
    LabelsReply,
    ModelInfoReply,
    ReadyReply,
    StreamEnd,
    TokenDelta,
    TranscriptReply,
)
from deployments.core.config import AppConfig
from deployments.core.errors import InternalFailure, ServeError
from serve_app.frontend import FrontEnd
from serve_app.group_load import GroupLoad
from serve_app.routes import build_api

TEXT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
SEGMENT = {"id": 0, "seek": 0, "start": 0.0, "end": 1.2, "text": "hello there",
           "tokens": [50364, 2425, 456], "temperature": 0.0, "avg_logprob": -0.2,
           "compression_ratio": 0.9, "no_speech_prob": 0.01}
WORDS = [{"word": " hello", "start": 0.0, "end": 0.5, "probability": 0.9},
         {"word": " there", "start": 0.5, "end": 1.2, "probability": 0.8}]


class Events:
    """A stream's events after its first, as ReplicaGroup.open_stream hands them on."""

    def __init__(self, events: list[Any]) -> None:
        self.events, self.cancelled = list(events), False

    def __aiter__(self) -> Events:
        return self

    async def __anext__(self) -> Any:
        if not self.events:
            raise StopAsyncIteration
        event = self.events.pop(0)
        if isinstance(event, BaseException):  # the replica failed mid-stream
            raise event
        return event

    def cancel(self) -> None:
        self.cancelled = True


class FakeGroup:
    """A replica group that answers each method with `answers[method]`, a callable of the
    call's arguments or a value; records every call."""

    def __init__(self, name: str, answers: dict[str, Any]) -> None:
        self.name, self.answers, self.load = name, answers, GroupLoad()
        self.calls: list[tuple[str, tuple]] = []

    def _answer(self, method: str, args: tuple) -> Any:
        self.calls.append((method, args))
        answer = self.answers[method]
        answer = answer(*args) if callable(answer) else answer
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def call(self, method: str, *args: Any, deadline: float | None = None,
                   idempotent: bool = False, alongside: bool = False) -> Any:
        return self._answer(method, args)

    async def open_stream(self, method: str, *args: Any, deadline: float | None = None,
                          alongside: bool = False):
        events = self._answer(method, args)
        return events[0], Events(events[1:])

    def error(self, exc: BaseException) -> ServeError:
        """As ReplicaGroup.error for what a fake raises: its own ServeError."""
        return exc if isinstance(exc, ServeError) else InternalFailure(repr(exc))


def echo_completion(prompt: Any, params: Any) -> CompletionReply:
    """A completion that says which prompt it completed: 'after <prompt>'."""
    return CompletionReply(f"after {prompt}", len(str(prompt).split()), 2, "stop")


def echo_stream(prompt: Any, params: Any) -> list[Any]:
    return [TokenDelta("after "), TokenDelta(str(prompt)),
            StreamEnd(len(str(prompt).split()), 2, "length")]


def speech_reply(audio: bytes, request: Any) -> TranscriptReply:
    words = WORDS if request.words else []
    text = "hello there" if request.task == "translate" else "bonjour"
    return TranscriptReply(text, "fr", 0.9, 1.2, [{**SEGMENT, "text": text}], words=words)


def fake_groups() -> tuple[FakeGroup, FakeGroup, FakeGroup]:
    return (FakeGroup("text", {"generate": echo_completion, "stream": echo_stream,
                               "ready": ReadyReply(), "model_info": ModelInfoReply({})}),
            FakeGroup("vision", {"embed_texts": lambda texts: EmbeddingsReply(
                                     [np.array([0.5, -1.25, 3.0], np.float32)] * len(texts)),
                                 "classify": LabelsReply([{"label": "cat", "score": 0.9}]),
                                 "ready": ReadyReply(), "model_info": ModelInfoReply({})}),
            FakeGroup("audio", {"speech": speech_reply, "ready": ReadyReply(),
                                "transcribe": TranscriptReply("hello", "en", 1.0, 1.0, []),
                                "model_info": ModelInfoReply({})}))


def app_client(groups: tuple[FakeGroup, FakeGroup, FakeGroup],
               configure: Callable[[dict], None] | None = None) -> TestClient:
    """The app's routes over `groups`, with metrics off (no Ray to count in); anonymous
    whatever the environment holds, as it reads no variable of keys or tenants."""
    settings: dict[str, Any] = {"observability": {"metrics": False},
                                "ingress": {"api_keys": {"env": None},
                                            "tenants": {"file_env": None}}}
    if configure is not None:
        configure(settings)
    return TestClient(build_api(FrontEnd(AppConfig.model_validate(settings), *groups)))


def post_speech(client: TestClient, path: str, fields: list[tuple[str, str]],
                audio: bytes = b"RIFF....") -> Any:
    """A multipart POST of `fields` (in order, repeats kept) and one audio file."""
    boundary = "fakeBoundary1234"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
                 + audio + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return client.post(path, content=body, headers={
        "content-type": f"multipart/form-data; boundary={boundary}"})
