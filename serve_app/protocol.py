"""OpenAI-compatible request schemas and response shapes.

Requests ignore unknown fields (as OpenAI's server does for fields a model does not use) but
validate the ones they know, so a bad value is a 400 naming the field.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# The seeds every text engine takes: torch.Generator.manual_seed and vLLM accept any int64,
# TensorRT-LLM an unsigned 64-bit one; a seed outside both is a 400, not a failed batch.
MIN_SEED, MAX_SEED = 0, 2**63 - 1
# The embeddings model name that selects CLIP's image tower: the served name plus this.
IMAGE_MODEL_SUFFIX = "-image"
# A function's or a response format's name, as OpenAI takes it.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Request):
    type: Literal["text"]
    text: str


class ImageUrl(_Request):
    url: str = Field(description="a data URL: data:image/png;base64,...")
    detail: str | None = None


class ImagePart(_Request):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Request):
    data: str = Field(description="base64 audio")
    format: str = Field("wav", description="wav, mp3, flac, ogg, ...")


class AudioPart(_Request):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImagePart | AudioPart, Field(discriminator="type")]


@dataclass
class MediaPart:
    """An image or audio part of a chat, found where the client put it."""

    kind: str  # "image" | "audio"
    data: str  # base64, or a data URL for an image
    message: int  # index in messages
    part: int  # index in that message's content

    @property
    def param(self) -> str:
        field = "image_url" if self.kind == "image" else "input_audio"
        return f"messages[{self.message}].content[{self.part}].{field}"


class FunctionDefinition(_Request):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Request):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Request):
    name: str


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: NamedFunction


class ToolCallFunction(_Request):
    name: str
    arguments: str


class ToolCall(_Request):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class JsonSchemaFormat(_Request):
    model_config = ConfigDict(populate_by_name=True)
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Request):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatMessage(_Request):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None  # an assistant's
    tool_call_id: str | None = None  # a tool's: the call it answers

    def text(self, media_text: dict[tuple[int, int], str] | None = None,
             index: int = 0) -> str:
        """The message as text; media parts become `media_text[(index, part)]` (what the
        pipeline perceived in them), or nothing."""
        if not isinstance(self.content, list):
            return self.content or ""
        pieces, perceived = [], False
        for part_index, part in enumerate(self.content):
            if isinstance(part, TextPart):
                pieces.append(part.text)
            elif media_text and (index, part_index) in media_text:
                pieces.append(f"\n{media_text[(index, part_index)]}\n")
                perceived = True
        text = "".join(pieces)
        return text.strip() if perceived else text


class StreamOptions(_Request):
    include_usage: bool = False


class ChatCompletionRequest(_Request):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True

    def stops_sent(self) -> list[str]:
        """The stop strings as sent, empty ones included (serve_app/limits.py caps them)."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def stop_list(self) -> tuple[str, ...]:
        """The stop strings; an empty one stops nothing, so it is left out."""
        return tuple(stop for stop in self.stops_sent() if stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def plain_messages(self, media_text: dict[tuple[int, int], str] | None = None
                       ) -> list[dict[str, Any]]:
        """Role and text, and an assistant's tool calls or the call a tool answers."""
        role = {"developer": "system"}
        return [{"role": role.get(m.role, m.role), "content": m.text(media_text, i),
                 **_tool_fields(m)} for i, m in enumerate(self.messages)]

    def media(self) -> list[MediaPart]:
        """Every image_url and input_audio part, in order."""
        found = []
        for i, message in enumerate(self.messages):
            for j, part in enumerate(message.content if isinstance(message.content, list)
                                     else []):
                if isinstance(part, ImagePart):
                    found.append(MediaPart("image", part.image_url.url, i, j))
                elif isinstance(part, AudioPart):
                    found.append(MediaPart("audio", part.input_audio.data, i, j))
        return found


def _tool_fields(message: ChatMessage) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if message.tool_calls:
        fields["tool_calls"] = [call.model_dump() for call in message.tool_calls]
    if message.tool_call_id is not None:
        fields["tool_call_id"] = message.tool_call_id
    return fields


class EmbeddingRequest(_Request):
    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class PipelineRequest(_Request):
    audio: str | None = Field(None, description="base64 audio (wav, flac, mp3, ogg)")
    image: str | None = Field(None, description="base64 or data-URL image")
    labels: list[str] | None = Field(None, min_length=1)
    prompt: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def encode_embedding(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(float).tolist()


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_completion(
    request_id: str, model: str, text: str, finish_reason: str, usage_: dict,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`message` replaces the plain one with `text` (tool calls: serve_app/tool_calls.py)."""
    return {
        "id": request_id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                     "message": message or {"role": "assistant", "content": text}}],
        "usage": usage_,
    }


def chat_chunk(
    request_id: str, model: str, delta: dict, finish_reason: str | None = None,
    usage_: dict | None = None, with_choice: bool = True,
) -> dict[str, Any]:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    chunk: dict[str, Any] = {
        "id": request_id, "object": "chat.completion.chunk", "created": now(), "model": model,
        "choices": choices if with_choice else [],
    }
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk
