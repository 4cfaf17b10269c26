"""HTTP ingress: OpenAI-compatible routes and the pipeline, mapped onto deployment handles.

Everything a client can get wrong becomes a JSON error with its status here or in a
deployment (ServeError); nothing a client sends can take a replica down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ray import serve
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from deployments.engines.text_base import SamplingParams
from serve_app import metrics, protocol
from serve_app.calls import call, first_and_rest
from serve_app.config import AppConfig
from serve_app.errors import ServeError
from serve_app.http import (
    decode_base64,
    error_response,
    parse_json,
    read_body,
    replayed,
    require_media_type,
    sse_event,
    sse_response,
)
from serve_app.pipeline import MultimodalPipeline
from serve_app.subtitles import TRANSCRIPTION_FORMATS, format_transcription

Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPES = ("application/json",)
IMAGE_MODEL_SUFFIX = "-image"
READY_TIMEOUT_S = 5.0


@serve.deployment
class Ingress:
    def __init__(self, config: dict[str, Any], text: Any, vision: Any, audio: Any) -> None:
        self.config = AppConfig.model_validate(config)
        self.limits = self.config.ingress
        self.text, self.vision, self.audio = text, vision, audio
        self.pipeline = MultimodalPipeline(text, vision, audio, self.limits.request_timeout_s,
                                           self.config.text.default_max_tokens)
        self.text_model = self.config.text.engine.served_model_name
        self.clip_model = self.config.vision.engine.served_model_name
        self.whisper_model = self.config.audio.engine.served_model_name
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz,
            ("GET", "/v1/models"): self.list_models,
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("POST", "/v1/audio/transcriptions"): self.transcriptions,
            ("POST", "/v1/pipeline"): self.run_pipeline,
        }

    async def __call__(self, request: Request) -> Response:
        # Under a route_prefix other than "/", Serve keeps it in the path and sets root_path.
        path = request.url.path.removeprefix(request.scope.get("root_path", ""))
        path = path.rstrip("/") or "/"
        handler = self.routes.get((request.method, path))
        started = time.perf_counter()
        try:
            if handler is None:
                raise self._no_route(request.method, path)
            response = await handler(request)
        except ServeError as error:
            response = error_response(error)
        metrics.http_requests().inc(tags={"route": path if handler else "other",
                                          "status": str(response.status_code)})
        metrics.http_latency().observe(time.perf_counter() - started,
                                       tags={"route": path if handler else "other"})
        return response

    def _no_route(self, method: str, path: str) -> ServeError:
        if any(route_path == path for _, route_path in self.routes):
            return ServeError(405, f"method {method} is not allowed on {path}")
        return ServeError(404, f"no route {path}")

    # -- health -----------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        names = {"text": self.text, "vision": self.vision, "audio": self.audio}
        checks = await asyncio.gather(*(self._is_ready(h) for h in names.values()))
        states = dict(zip(names, checks))
        ready = all(states.values())
        return JSONResponse({"ready": ready, "deployments": states},
                            status_code=200 if ready else 503)

    async def _is_ready(self, handle: Any) -> bool:
        try:
            return bool(await call(handle.ready.remote(), "ready", READY_TIMEOUT_S))
        except ServeError:
            return False

    # -- models -----------------------------------------------------------------------------

    def _models(self) -> dict[str, str]:
        return {self.text_model: "chat", self.clip_model: "text-embedding",
                self.clip_model + IMAGE_MODEL_SUFFIX: "image-embedding",
                self.whisper_model: "transcription"}

    async def list_models(self, request: Request) -> Response:
        created = protocol.now()
        data = [{"id": name, "object": "model", "created": created, "owned_by": "mmserve",
                 "capability": capability} for name, capability in self._models().items()]
        return JSONResponse({"object": "list", "data": data})

    def _check_model(self, requested: str, served: str | tuple[str, ...]) -> None:
        served = (served,) if isinstance(served, str) else served
        if requested not in served:
            raise ServeError(404, f"model {requested!r} is not served on this route; "
                             f"use {' or '.join(served)}", "model")

    # -- chat -------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = parse_json(await read_body(request, self.limits.max_body_bytes),
                          protocol.ChatCompletionRequest)
        self._check_model(body.model, self.text_model)
        params = self._sampling(body)
        messages = body.plain_messages()
        request_id = protocol.new_id("chatcmpl")
        if body.stream:
            return await self._stream_chat(request_id, messages, params, body)
        result = await call(self.text.generate.remote(messages, params), "text",
                            self.limits.request_timeout_s)
        return JSONResponse(protocol.chat_completion(
            request_id, self.text_model, result["text"], result["finish_reason"],
            protocol.usage(result["prompt_tokens"], result["completion_tokens"])))

    def _sampling(self, body: protocol.ChatCompletionRequest) -> SamplingParams:
        settings = self.config.text
        max_tokens = body.requested_max_tokens() or settings.default_max_tokens
        if max_tokens > settings.max_tokens_limit:
            raise ServeError(400, f"max_tokens must be at most {settings.max_tokens_limit}",
                             "max_tokens")
        return SamplingParams(max_tokens=max_tokens, temperature=body.temperature,
                              top_p=body.top_p, seed=body.seed, stop=body.stop_list())

    async def _stream_chat(self, request_id: str, messages: list[dict], params: SamplingParams,
                           body: protocol.ChatCompletionRequest) -> Response:
        stream = self.text.options(stream=True).stream.remote(messages, params)
        first, rest = await first_and_rest(stream, "text", self.limits.request_timeout_s)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse_response(self._chat_events(request_id, first, rest, include_usage))

    async def _chat_events(self, request_id: str, first: Any, rest: AsyncIterator,
                           include_usage: bool) -> AsyncIterator[str]:
        model = self.text_model
        yield sse_event(protocol.chat_chunk(request_id, model, {"role": "assistant",
                                                                "content": ""}))
        item = first
        try:
            while item is not None:
                if "text" in item:
                    yield sse_event(protocol.chat_chunk(request_id, model,
                                                        {"content": item["text"]}))
                else:
                    yield from_completion(request_id, model, item["completion"], include_usage)
                item = await anext(rest, None)
        except Exception as exc:  # the stream already started: report in-band, then end
            yield sse_event({"error": ServeError(500, f"generation failed: {exc}").body()["error"]})
        finally:
            if item is not None:  # the client went away: stop decoding for it
                rest.cancel()
        yield sse_event("[DONE]")

    # -- embeddings -------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = parse_json(await read_body(request, self.limits.max_body_bytes),
                          protocol.EmbeddingRequest)
        image_model = self.clip_model + IMAGE_MODEL_SUFFIX
        self._check_model(body.model, (self.clip_model, image_model))
        inputs = body.inputs()
        if body.model == image_model:
            images = [decode_base64(item, f"input[{i}]") for i, item in enumerate(inputs)]
            response = self.vision.embed_images.remote(images)
        else:
            response = self.vision.embed_texts.remote(inputs)
        vectors = await call(response, "vision", self.limits.request_timeout_s)
        if body.dimensions is not None and body.dimensions != len(vectors[0]):
            raise ServeError(400, f"{body.model} has {len(vectors[0])} dimensions", "dimensions")
        data = [{"object": "embedding", "index": i,
                 "embedding": protocol.encode_embedding(v, body.encoding_format)}
                for i, v in enumerate(vectors)]
        tokens = 0 if body.model == image_model else sum(len(t.split()) for t in inputs)
        return JSONResponse({"object": "list", "model": body.model, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # -- audio ------------------------------------------------------------------------------

    async def transcriptions(self, request: Request) -> Response:
        require_media_type(request, "multipart/form-data")
        body = await read_body(request, self.limits.max_body_bytes)
        form = await _form(replayed(request, body))
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ServeError(400, "file: a multipart file field is required", "file")
        self._check_model(str(form.get("model", "")), (self.whisper_model, "whisper-1"))
        response_format = str(form.get("response_format", "json"))
        if response_format not in TRANSCRIPTION_FORMATS:
            raise ServeError(400, f"response_format must be one of {TRANSCRIPTION_FORMATS}",
                             "response_format")
        _check_audio_type(upload)
        language = form.get("language") or None
        audio = await upload.read()
        result = await call(self.audio.transcribe.remote(audio, language), "audio",
                            self.limits.request_timeout_s)
        content, media_type = format_transcription(result, response_format)
        if media_type == "application/json":
            return JSONResponse(content)
        return PlainTextResponse(content, media_type=media_type)

    # -- pipeline ---------------------------------------------------------------------------

    async def run_pipeline(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = parse_json(await read_body(request, self.limits.max_body_bytes),
                          protocol.PipelineRequest)
        audio = decode_base64(body.audio, "audio") if body.audio else None
        image = decode_base64(body.image, "image") if body.image else None
        if body.max_tokens and body.max_tokens > self.config.text.max_tokens_limit:
            raise ServeError(400, f"max_tokens must be at most "
                             f"{self.config.text.max_tokens_limit}", "max_tokens")
        if body.stream:
            events = await self.pipeline.stream(body, audio, image)
            return sse_response(_sse_with_done(events))
        return JSONResponse(await self.pipeline.run(body, audio, image))


def from_completion(request_id: str, model: str, completion: dict, include_usage: bool) -> str:
    usage = protocol.usage(completion["prompt_tokens"], completion["completion_tokens"])
    final = sse_event(protocol.chat_chunk(request_id, model, {}, completion["finish_reason"]))
    if include_usage:
        final += sse_event(protocol.chat_chunk(request_id, model, {}, usage_=usage,
                                               with_choice=False))
    return final


async def _sse_with_done(events: AsyncIterator[dict]) -> AsyncIterator[str]:
    try:
        async for event in events:
            yield sse_event(event)
    except Exception as exc:
        yield sse_event({"type": "error", "message": str(exc)})
    yield sse_event("[DONE]")


async def _form(request: Request):
    try:
        return await request.form(max_files=1, max_fields=32)
    except Exception as exc:  # starlette raises several types for broken multipart bodies
        raise ServeError(400, f"the multipart body could not be parsed: {exc}") from None


def _check_audio_type(upload: UploadFile) -> None:
    media = (upload.content_type or "").split(";")[0].strip().lower()
    if media and not media.startswith(("audio/", "video/")) and media not in (
            "application/octet-stream", "application/ogg"):
        raise ServeError(415, f"unsupported media type {media!r} for file; send audio "
                         "(wav, flac, mp3 or ogg)", "file")
