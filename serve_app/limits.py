"""Per-request work caps, checked at the ingress right after parsing, before any model call.

Each cap bounds what one request can make a replica do: how many inputs it embeds, how much
text it tokenizes, how many messages it templates, how many stop strings each decoding step
looks for, how many labels it classifies against. A request past a cap gets a 400
naming the field, and no replica sees it. Caps that need the bytes decoded (pixels per image,
audio duration) are checked in the replicas, from the media's header before decoding.
"""

from __future__ import annotations

from deployments.core.caps import check_labels
from deployments.core.config import AppConfig, TextSettings
from deployments.core.errors import InvalidRequest
from serve_app.protocol import (
    IMAGE_MODEL_SUFFIX,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    PipelineRequest,
)


def check_chat(body: ChatCompletionRequest, config: AppConfig) -> None:
    """Messages, prompt characters (all messages together), media parts, stop strings and
    max_tokens."""
    if len(body.messages) > config.text.max_messages:
        raise InvalidRequest(f"messages: {len(body.messages)} messages; the limit is "
                             f"{config.text.max_messages} per request", "messages")
    _check_stops(body, config.text)
    characters = sum(len(message.text()) for message in body.messages)
    _check_prompt_chars(characters, config.text, "messages")
    media = len(body.media())
    if media > config.ingress.max_media_parts:
        raise InvalidRequest(f"messages: {media} image and audio parts; the limit is "
                             f"{config.ingress.max_media_parts} per request", "messages")
    _check_max_tokens(body.requested_max_tokens(), config.text)


def check_completions(body: CompletionRequest, config: AppConfig) -> None:
    """Prompts, prompt characters (all prompts together), stop strings and max_tokens."""
    prompts = body.prompts()
    if len(prompts) > config.text.max_prompts:
        raise InvalidRequest(f"prompt: {len(prompts)} prompts; the limit is "
                             f"{config.text.max_prompts} per request", "prompt")
    _check_stops(body, config.text)
    _check_prompt_chars(sum(len(prompt) for prompt in prompts), config.text, "prompt")
    _check_max_tokens(body.requested_max_tokens(), config.text)


def _check_stops(body: ChatCompletionRequest | CompletionRequest, text: TextSettings) -> None:
    stops = body.stops_sent()
    if len(stops) > text.max_stop_sequences:
        raise InvalidRequest(f"stop: {len(stops)} stop sequences; the limit is "
                             f"{text.max_stop_sequences}", "stop")
    for index, stop in enumerate(stops):
        if len(stop) > text.max_stop_chars:
            field = "stop" if isinstance(body.stop, str) else f"stop[{index}]"
            raise InvalidRequest(f"{field}: {len(stop)} characters; the limit is "
                                 f"{text.max_stop_chars}", field)


def check_embeddings(body: EmbeddingRequest, config: AppConfig) -> None:
    """Inputs per request and, for the text model, characters per input."""
    vision = config.vision
    inputs = body.inputs()
    if len(inputs) > vision.max_inputs:
        raise InvalidRequest(f"input: {len(inputs)} inputs; the limit is {vision.max_inputs} "
                             "per request", "input")
    if body.model == vision.engine.served_model_name + IMAGE_MODEL_SUFFIX:
        return  # images: their pixels are checked by the replica, from each image's header
    for index, text in enumerate(inputs):
        if looks_like_an_image(text):
            image_model = vision.engine.served_model_name + IMAGE_MODEL_SUFFIX
            raise InvalidRequest(f"input[{index}] is an image; {body.model} embeds text: send "
                                 f"images to {image_model}", f"input[{index}]")
        if len(text) > vision.max_text_chars:
            raise InvalidRequest(f"input[{index}]: {len(text)} characters; the limit is "
                                 f"{vision.max_text_chars}", f"input[{index}]")


# base64 of the first bytes of PNG, JPEG, GIF and WebP files.
_IMAGE_BASE64_PREFIXES = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR")


def looks_like_an_image(text: str) -> bool:
    """A data URL of an image, or base64 that starts like a PNG, JPEG, GIF or WebP file."""
    return text.startswith("data:image/") or (
        text.startswith(_IMAGE_BASE64_PREFIXES) and " " not in text[:64])


def check_pipeline(body: PipelineRequest, config: AppConfig) -> None:
    """Labels per request and per label, prompt characters and max_tokens."""
    if body.labels is not None:
        check_labels(body.labels, config.vision.max_labels, config.vision.max_label_chars)
    if body.prompt is not None:
        _check_prompt_chars(len(body.prompt), config.text, "prompt")
    _check_max_tokens(body.max_tokens, config.text)


def _check_prompt_chars(characters: int, text: TextSettings, field: str) -> None:
    if characters > text.max_prompt_chars:
        raise InvalidRequest(f"{field}: the prompt has {characters} characters; the limit is "
                             f"{text.max_prompt_chars}", field)


def _check_max_tokens(max_tokens: int | None, text: TextSettings) -> None:
    if max_tokens is not None and max_tokens > text.max_tokens_limit:
        raise InvalidRequest(f"max_tokens must be at most {text.max_tokens_limit}",
                             "max_tokens")
