"""OpenAI-compatible request schemas and response shapes.

Requests are strict: a field a model does not declare is refused with OpenAI's
`unsupported_parameter` (serve_app/strict_fields.py), so nothing a client asks for is
silently dropped. The fields declared without an effect are informational ones that change
no answer (`user`, `metadata`, ...: docs/openai-compatibility.md); a value of one that would
(`store: true`) is refused with `unsupported_value`. Every declared value is validated, so a
bad one is a 400 naming its field.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from serve_app.sampling_options import ChoiceOptions, SamplingOptions
from serve_app.strict_fields import unsupported_value

# The seeds every text engine takes: torch.Generator.manual_seed and vLLM accept any int64,
# TensorRT-LLM an unsigned 64-bit one; a seed outside both is a 400, not a failed batch.
MIN_SEED, MAX_SEED = 0, 2**63 - 1
# The embeddings model name that selects CLIP's image tower: the served name plus this.
IMAGE_MODEL_SUFFIX = "-image"
# /v1/completions' max_tokens when a request gives none: OpenAI's default for that route.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
# service_tier values that ask for nothing but the one tier this server has.
NO_OP_SERVICE_TIERS = ("auto", "default")
# /v1/completions' legacy `logprobs`: at most this many most likely tokens per place, as OpenAI's.
MAX_COMPLETION_LOGPROBS = 5
# A function's or a response format's name, as OpenAI takes it.
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ChatNoOps(_Request):
    """Informational fields of OpenAI's chat API, accepted and validated, changing no answer."""

    user: str | None = Field(None, description="no-op: an end-user id")
    safety_identifier: str | None = Field(None, description="no-op: an end-user id")
    prompt_cache_key: str | None = Field(
        None, description="no-op: the prefix cache needs no hint")
    metadata: dict[str, str] | None = Field(None, description="no-op: nothing is stored")
    store: bool | None = Field(None, description="false only: nothing is stored")
    service_tier: str | None = Field(None, description="auto or default: there is one tier")

    @field_validator("store")
    @classmethod
    def _nothing_is_stored(cls, store: bool | None) -> bool | None:
        if store:
            raise unsupported_value("this server stores no completions; send false or omit it")
        return store

    @field_validator("service_tier")
    @classmethod
    def _one_tier(cls, tier: str | None) -> str | None:
        if tier is not None and tier not in NO_OP_SERVICE_TIERS:
            raise unsupported_value(f"this server has one service tier; send "
                                    f"{' or '.join(NO_OP_SERVICE_TIERS)}, or omit it")
        return tier


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
    include_obfuscation: bool | None = Field(
        None, description="no-op: chunks carry no obfuscation padding")


class ChatCompletionRequest(_ChatNoOps, SamplingOptions):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True

    @field_validator("max_completion_tokens")
    @classmethod
    def _one_max_tokens(cls, value: int | None, info: ValidationInfo) -> int | None:
        """max_completion_tokens is max_tokens' newer name: both may be sent, if they agree."""
        given = info.data.get("max_tokens")
        if value is not None and given is not None and value != given:
            raise ValueError(f"{value} differs from max_tokens {given}; send one of them")
        return value

    def stops_sent(self) -> list[str]:
        """The stop strings as sent, empty ones included (serve_app/limits.py caps them)."""
        return stops_sent(self.stop)

    def stop_list(self) -> tuple[str, ...]:
        """The stop strings; an empty one stops nothing, so it is left out."""
        return stop_list(self.stop)

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


def stops_sent(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    return tuple(each for each in stops_sent(stop) if each)


class CompletionRequest(_Request, ChoiceOptions):
    """/v1/completions: each prompt completed as it is, without the chat template; `n`
    choices of each, prompt-major."""

    model: str
    prompt: str | list[str] = Field(
        description="a prompt, or a list of prompts: one choice per prompt, in order")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)
    stop: str | list[str] | None = None
    echo: bool = Field(False, description="the prompt before each choice's text")
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="no-op: an end-user id")
    logprobs: int | None = Field(
        None, ge=0, le=MAX_COMPLETION_LOGPROBS, strict=True,
        description="each output token's logprob, and this many most likely tokens at its "
                    "place (the legacy shape)")

    @field_validator("logprobs")
    @classmethod
    def _not_of_the_echo(cls, logprobs: int | None, info: ValidationInfo) -> int | None:
        if logprobs is not None and info.data.get("echo"):
            raise unsupported_value("the echoed prompt's tokens have no logprobs here; send "
                                    "echo or logprobs, not both")
        return logprobs

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and not prompt:
            raise ValueError("send at least one prompt")
        return prompt

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def stops_sent(self) -> list[str]:
        return stops_sent(self.stop)

    def stop_list(self) -> tuple[str, ...]:
        return stop_list(self.stop)

    def requested_max_tokens(self) -> int:
        return self.max_tokens or COMPLETIONS_DEFAULT_MAX_TOKENS

    def sampling_fields(self) -> dict[str, Any]:
        """The choices' options, and the legacy `logprobs` as chat's logprobs and
        top_logprobs."""
        return {**self.choice_fields(), "logprobs": self.logprobs is not None,
                "top_logprobs": self.logprobs or 0}


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
    user: str | None = Field(None, description="no-op: an end-user id")

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


AudioResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]


class TranslationForm(_Request):
    """/v1/audio/translations' multipart fields but the file: speech in any language the model
    knows, as English text."""

    model: str
    response_format: AudioResponseFormat = "json"
    temperature: float = Field(0.0, description="0 only: decoding is greedy, with no "
                               "temperature fallback")
    stream: bool = Field(False, description="false only: the answer comes whole")

    @field_validator("temperature")
    @classmethod
    def _greedy(cls, temperature: float) -> float:
        if temperature != 0:
            raise unsupported_value("decoding is greedy without a temperature fallback; send "
                                    "0 or omit it")
        return temperature

    @field_validator("stream")
    @classmethod
    def _whole(cls, stream: bool) -> bool:
        if stream:
            raise unsupported_value("transcripts come whole; send false or omit it")
        return stream


class TranscriptionForm(TranslationForm):
    """/v1/audio/transcriptions' multipart fields but the file."""

    language: str | None = Field(None, description="ISO 639-1; none: detected")
    timestamp_granularities: list[Literal["segment", "word"]] = Field(
        default_factory=list, description="verbose_json only: word adds `words`")

    @field_validator("language")
    @classmethod
    def _empty_is_none(cls, language: str | None) -> str | None:
        return language or None

    @field_validator("timestamp_granularities")
    @classmethod
    def _verbose_only(cls, granularities: list[str], info: ValidationInfo) -> list[str]:
        if granularities and info.data.get("response_format") != "verbose_json":
            raise ValueError("timestamps need response_format verbose_json")
        return granularities

    def words(self) -> bool:
        return "word" in self.timestamp_granularities


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
    logprobs: list[dict] | None = None, other_choices: Sequence[dict] = (),
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`other_choices` (choices 1..n-1): {text, finish_reason, logprobs} each, and maybe a
    `message`; `message` replaces choice 0's plain one with `text` (tool calls:
    serve_app/tool_calls.py)."""
    choices = [{"text": text, "finish_reason": finish_reason, "logprobs": logprobs,
                "message": message}, *other_choices]
    return {
        "id": request_id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": index, "finish_reason": choice["finish_reason"],
                     "logprobs": logprobs_object(choice["logprobs"]),
                     "message": choice.get("message") or {"role": "assistant",
                                                          "content": choice["text"]}}
                    for index, choice in enumerate(choices)],
        "usage": usage_,
    }


def logprobs_object(entries: list[dict] | None) -> dict[str, Any] | None:
    """A choice's `logprobs`: its tokens' entries (ChatCompletionTokenLogprob), or null."""
    return None if entries is None else {"content": entries}


def text_completion(request_id: str, model: str, choices: list[dict[str, Any]],
                    usage_: dict) -> dict[str, Any]:
    """/v1/completions' answer: its choices ({text, finish_reason, logprobs}: the legacy
    logprobs object or None) in index order."""
    return {
        "id": request_id, "object": "text_completion", "created": now(), "model": model,
        "choices": [{"index": i, "text": choice["text"],
                     "finish_reason": choice["finish_reason"], "logprobs": choice["logprobs"]}
                    for i, choice in enumerate(choices)],
        "usage": usage_,
    }


def text_completion_chunk(request_id: str, model: str, index: int | None, text: str = "",
                          finish_reason: str | None = None, usage_: dict | None = None,
                          logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event of a streamed /v1/completions: a choice's text (and its tokens' legacy
    logprobs) or finish, or (index None) the usage of all choices, as OpenAI sends it, after
    them with no choice."""
    choices = [] if index is None else [{"index": index, "text": text,
                                         "finish_reason": finish_reason, "logprobs": logprobs}]
    chunk: dict[str, Any] = {"id": request_id, "object": "text_completion", "created": now(),
                             "model": model, "choices": choices}
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk


def chat_chunk(
    request_id: str, model: str, delta: dict, finish_reason: str | None = None,
    usage_: dict | None = None, with_choice: bool = True, index: int = 0,
    logprobs: list[dict] | None = None,
) -> dict[str, Any]:
    choices = [{"index": index, "delta": delta, "finish_reason": finish_reason,
                "logprobs": logprobs_object(logprobs)}]
    chunk: dict[str, Any] = {
        "id": request_id, "object": "chat.completion.chunk", "created": now(), "model": model,
        "choices": choices if with_choice else [],
    }
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk
