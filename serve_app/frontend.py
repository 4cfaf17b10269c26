"""The front end: what every route does, written once over three groups (text, vision,
audio) that answer `call` and `open_stream` (serve_app/calls.py over Serve handles).

Everything a client can get wrong becomes a JSON error with its status here or in a replica
(a ServeError, mapped in serve_app/http_errors.py); nothing a client sends can take a replica
down. Every request but the health checks is authenticated (when keys are configured) as
its key's tenant, admitted only while this replica has room and the tenant is within its
limits (else 429; every answer to a tenant with limits carries OpenAI's x-ratelimit-*
headers), checked against the input caps before any model sees it, and given a deadline that
travels with it into every replica it reaches; once it has ended, what it used is counted for
its tenant (serve_app/tenant_usage.py: GET /v1/usage, the ray_mmserve_tenant_* counters). The
tenant is kept in `request.state.tenant`: the response cache keeps each tenant's answers apart
by it. Every answer is counted against its route's SLO and, for a tenant allowed the
diagnostics (serve_app/diagnostics.py), says where its time went (Server-Timing:
serve_app/request_timing.py) and what the cache did (X-Cache). The routes themselves (paths,
OpenAPI) are in serve_app/routes.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from deployments.core.call_protocol import (
    CompletionReply,
    Reply,
    SpeechRequest,
    StreamEnd,
    TokenDelta,
    TranscriptReply,
)
from deployments.core.config import AppConfig
from deployments.core.deadline import deadline_after
from deployments.core.errors import (
    InternalFailure,
    InvalidRequest,
    Overloaded,
    ServeError,
)
from deployments.core.generation import SamplingParams
from deployments.replicas import metrics
from serve_app import (
    cache,
    diagnostics,
    limits,
    protocol,
    request_objective,
    request_tenant,
    request_timing,
)
from serve_app.answer_shape import AnswerShape, answer_shape
from serve_app.audio_form import read_audio_form
from serve_app.auth import ANONYMOUS_WARNING, authenticate_headers, load_key_directory
from serve_app.class_admission import concurrency_cap
from serve_app.fresh_result import FreshResult
from serve_app.group_load import GroupLoad
from serve_app.group_placement import UNPLACEABLE_RETRY_AFTER_S, PlacementWatch
from serve_app.http import (
    TIMEOUT_HEADER,
    M,
    decode_base64,
    parse_json,
    read_body,
    replayed,
    require_media_type,
    sse_event,
    sse_response,
    timeout_from_header,
)
from serve_app.http_errors import HttpError, error_body, error_response, reason_of
from serve_app.legacy_logprobs import LegacyLogprobs
from serve_app.pipeline import DecodedMedia, MultimodalPipeline, decode_media
from serve_app.prompts import with_system_prompt
from serve_app.request_metrics import TokenClock, count_slo
from serve_app.request_timing import RequestTiming
from serve_app.retry_rule import RetryRule
from serve_app.subtitles import format_transcription
from serve_app.tenant_limits import Admission, TenantLimits, make_buckets
from serve_app.tenant_usage import TenantUsage, make_usage_ledger, require_admin
from serve_app.tenants import Tenant
from serve_app.text_completions import CompletionChunks, completion_events, open_streams
from serve_app.token_stream import TokenStream, in_band
from serve_app.tool_calls import (
    AnswerReader,
    TextReader,
    finish_reason,
    reader_for,
    whole_message,
)
from serve_app.tracing import RequestTracer

if TYPE_CHECKING:  # its Ray imports stay out of what only calls it
    from serve_app.calls import ReplicaGroup

Handler = Callable[[Request], Awaitable[Response]]
JSON_TYPES = ("application/json",)
READY_TIMEOUT_S = 5.0
# /readyz answers from a check at most this old, with one in flight: a flood of anonymous probes
# costs the groups at most one call each per second and per ingress replica.
READY_MAX_AGE_S = 1.0
MODEL_INFO_TIMEOUT_S = 2.0
CACHE_ROUTE_PATHS = {cache.EMBEDDINGS: "/v1/embeddings", cache.CHAT: "/v1/chat/completions",
                     cache.COMPLETIONS: "/v1/completions",
                     cache.TRANSCRIPTIONS: "/v1/audio/transcriptions",
                     cache.TRANSLATIONS: "/v1/audio/translations"}
logger = logging.getLogger("ray.serve")


class FrontEnd:
    def __init__(self, config: AppConfig, text: ReplicaGroup, vision: ReplicaGroup,
                 audio: ReplicaGroup) -> None:
        self.config = config
        self.limits = self.config.ingress
        self.keys = load_key_directory(self.limits)
        if self.keys.anonymous:
            logger.warning(ANONYMOUS_WARNING)
        self.tenant_limits = TenantLimits(make_buckets(self.config))
        self.tenant_usage = TenantUsage(make_usage_ledger(self.config))
        self.text, self.vision, self.audio = text, vision, audio
        self.load = GroupLoad()  # this replica's own requests, for its admission and Retry-After
        retry = RetryRule.from_settings(self.limits)
        groups = (self.text, self.vision, self.audio)
        for group in groups:
            group.retry = retry  # which idempotent calls are cheap enough to send again
        self.pipeline = MultimodalPipeline(self.text, self.vision, self.audio,
                                           self.config.text.default_max_tokens)
        self.text_model = self.config.text.engine.served_model_name
        self.clip_model = self.config.vision.engine.served_model_name
        self.whisper_model = self.config.audio.engine.served_model_name
        self.cache = cache.ResponseCache.from_config(self.config, _count_cache)
        self.observability = self.config.observability
        self.slo = self.config.slo
        metrics.set_enabled(self.observability.metrics)
        self.tracer = RequestTracer.from_config(self.observability.tracing)
        self.readiness = FreshResult(self._group_states, READY_MAX_AGE_S)
        self.placement = PlacementWatch.of_handles({g.name: getattr(g, "handle", None)
                                                    for g in groups})
        for group in groups:
            group.refusal = partial(self.placement.refusal, group.name)

    async def handle(self, handler: Handler, request: Request, route: str,
                     open_route: bool = False) -> Response:
        """The handler's response, or its error as JSON; counted by route and status, timed
        (Server-Timing and X-Cache for those allowed them). An open route (a health probe)
        needs no key and is never turned away."""
        timed = self.observability.server_timing or self.tracer is not None
        with request_timing.timed_request(timed) as timing:
            request.state.timing = timing
            response = await self._answer(handler, request, route, open_route)
        admission: Admission | None = getattr(request.state, "admission", None)
        if admission is not None:
            response.headers.update(admission.headers())
        self._count(route, response, timing)
        response.headers.update(diagnostics.headers(
            self._shows_diagnostics(request), cache.state_of(request),
            timing.header() if self.observability.server_timing else None))
        if self.tracer is not None:
            self._trace(request, route, response, timing)
        return response

    def _trace(self, request: Request, route: str, response: Response,
               timing: RequestTiming) -> None:
        """Exports the request's spans once it is answered: a stream, after its last event."""
        def export() -> None:
            self.tracer.export(request.method, route, response.status_code, timing,
                               request.headers.get("x-request-id"))
        if isinstance(response, StreamingResponse):
            response.body_iterator = _finally(response.body_iterator, export)
        else:
            export()

    async def _answer(self, handler: Handler, request: Request, route: str,
                      open_route: bool) -> Response:
        try:
            if open_route:
                return await handler(request)
            tenant = authenticate_headers(request.headers.getlist("authorization"), self.keys)
            request.state.tenant = tenant
            return await self._admitted(handler, request, tenant)
        except ServeError as error:
            metrics.rejected_requests().inc(tags={"route": route, "reason": reason_of(error)})
            return error_response(error)
        except Exception:  # a bug: still a JSON answer, and the replica serves on
            logger.exception("unhandled error on %s %s", request.method, route)
            metrics.rejected_requests().inc(tags={"route": route, "reason": "internal"})
            return error_response(InternalFailure("internal error"))

    def _shows_diagnostics(self, request: Request) -> bool:
        """Whether this request's answer may carry X-Cache and Server-Timing: its tenant (none
        before authentication, or on an open route) is allowed them, or the API is anonymous."""
        return diagnostics.allowed(self.keys.anonymous, getattr(request.state, "tenant", None))

    def _count(self, route: str, response: Response, timing: RequestTiming) -> None:
        seconds = timing.elapsed()
        metrics.http_requests().inc(tags={"route": route, "status": str(response.status_code)})
        metrics.http_latency().observe(seconds, tags={"route": route})
        if not isinstance(response, StreamingResponse):  # a stream counts at its first token
            objective = self.slo.for_route(route)
            count_slo(route, response.status_code, seconds,
                      objective.e2e_s if objective is not None else None)

    async def _admitted(self, handler: Handler, request: Request, tenant: Tenant | None
                        ) -> Response:
        """Runs the handler if this replica has room for the tenant's class
        (serve_app/class_admission.py) and the tenant is within its limits
        (serve_app/tenant_limits.py), with the request's deadline set; a streamed response
        holds its place until its last event is sent, and is charged to its tenant then. What
        the request used is counted for its tenant once it has ended, whatever its answer."""
        priority = "interactive" if tenant is None else tenant.priority
        if self.load.in_flight >= concurrency_cap(self.limits.max_concurrent_requests,
                                                  self.limits.interactive_reserve, priority):
            self.load.rejected()
            raise Overloaded("the server is at capacity; retry later",
                             retry_after_s=self.load.retry_after_s())
        request.state.deadline = deadline_after(self._timeout_s(request))
        admission = await self.tenant_limits.admit(tenant)
        request.state.admission = admission
        if admission.refusal is not None:
            raise admission.refusal
        usage = request_tenant.start(tenant).usage
        request_objective.start(time.time(), self.slo.for_route(request.url.path))
        self.load.started()
        try:
            response = await handler(request)
        except BaseException:
            self.load.finished()
            self.tenant_limits.settle_later(admission, usage)
            self.tenant_usage.record(tenant, usage)
            raise
        if isinstance(response, StreamingResponse):
            def done() -> None:
                self.load.finished()
                self.tenant_limits.settle_later(admission, usage)
                self.tenant_usage.record(tenant, usage)
            response.body_iterator = _finally(response.body_iterator, done)
        else:
            self.load.finished()
            await self.tenant_limits.settle(admission, usage)
            self.tenant_usage.record(tenant, usage)
        return response

    def _timeout_s(self, request: Request) -> float:
        """The configured deadline, or sooner if the client asks (X-Request-Timeout: seconds)."""
        return timeout_from_header(request.headers.getlist(TIMEOUT_HEADER),
                                   self.limits.request_timeout_s)

    # -- health -----------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """200 when every group answers; 429 when one is overloaded (its queue is full, or it
        rejected work in the last seconds) and none is down; 503 when one is down. Answered from
        a check at most READY_MAX_AGE_S old."""
        groups = (self.text, self.vision, self.audio)
        states, unplaceable = await asyncio.gather(self.readiness.get(),
                                                   self.placement.current())
        status = next((s for s in ("down", "overloaded") if s in states.values()), "ready")
        code = {"ready": 200, "overloaded": 429, "down": 503}[status]
        body = {"ready": status == "ready", "status": status, "deployments": states}
        headers = None
        if status == "overloaded":
            headers = {"Retry-After": str(max(g.load.retry_after_s() for g in groups))}
        if unplaceable:  # a group no node can hold: which, and what it lacks
            body["unplaceable"] = {name: stuck.as_json() for name, stuck in unplaceable.items()}
            headers = {"Retry-After": str(UNPLACEABLE_RETRY_AFTER_S)}
        return JSONResponse(body, status_code=code, headers=headers)

    async def _group_states(self) -> dict[str, str]:
        groups = (self.text, self.vision, self.audio)
        return dict(zip((g.name for g in groups),
                        await asyncio.gather(*(self._state(g) for g in groups))))

    async def _state(self, group: ReplicaGroup) -> str:
        try:
            await group.call("ready", deadline=deadline_after(READY_TIMEOUT_S))
        except ServeError as error:
            return "overloaded" if isinstance(error, Overloaded) else "down"
        return "overloaded" if group.load.overloaded() else "ready"

    # -- usage ------------------------------------------------------------------------------

    async def usage(self, request: Request) -> Response:
        """Every tenant's usage per hour and per day (serve_app/usage_totals.py), for an admin
        tenant's key; 403 for any other."""
        account = request_tenant.current()
        require_admin(account.tenant if account is not None else None)
        return JSONResponse(await self.tenant_usage.ledger.report())

    # -- models -----------------------------------------------------------------------------

    def _models(self) -> dict[str, tuple[str, ReplicaGroup]]:
        """Each served model name -> its capability and the group that serves it."""
        return {self.text_model: ("chat", self.text),
                self.clip_model: ("text-embedding", self.vision),
                self.clip_model + protocol.IMAGE_MODEL_SUFFIX: ("image-embedding", self.vision),
                self.whisper_model: ("transcription", self.audio)}

    async def list_models(self, request: Request) -> Response:
        """Each served model, with the dtype (or compute type) its engine chose at start and
        why, as one of its replicas reports it; without them when no replica answers."""
        created = protocol.now()
        groups = (self.text, self.vision, self.audio)
        infos = dict(zip((g.name for g in groups),
                         await asyncio.gather(*(self._model_info(g) for g in groups))))
        data = [{"id": name, "object": "model", "created": created, "owned_by": "mmserve",
                 "capability": capability, **infos[group.name]}
                for name, (capability, group) in self._models().items()]
        return JSONResponse({"object": "list", "data": data})

    async def _model_info(self, group: ReplicaGroup) -> dict[str, str]:
        try:
            reply = await group.call("model_info", deadline=deadline_after(MODEL_INFO_TIMEOUT_S))
            return reply.fields
        except ServeError:
            return {}

    def _check_model(self, requested: str, served: str | tuple[str, ...]) -> None:
        served = (served,) if isinstance(served, str) else served
        if requested not in served:
            raise HttpError(404, f"model {requested!r} is not served on this route; "
                            f"use {' or '.join(served)}", "model")

    # -- chat -------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = self._json(await self._body(request), protocol.ChatCompletionRequest)
        self._check_model(body.model, self.text_model)
        limits.check_chat(body, self.config)
        shape = answer_shape(body)  # a schema the grammar cannot enforce: 400 before any work
        params = self._sampling(body, shape)
        request_id = protocol.new_id("chatcmpl")
        deadline = request.state.deadline
        media = [(part, decode_media(part)) for part in body.media()]  # before any stage runs
        if body.stream:
            messages = await self._chat_messages(body, media, deadline)
            return await self._stream_chat(request, request_id, messages, params, body, shape)

        async def complete() -> Reply:
            messages = await self._chat_messages(body, media, deadline)
            return await self.text.call("generate", messages, params, deadline=deadline)
        result = await self._cached(request, cache.CHAT, self.text_model,
                                    self._chat_key(body, media, params), CompletionReply,
                                    complete, cacheable=params.temperature == 0)
        reader = reader_for(shape)
        message = whole_message(reader, result.text)
        return JSONResponse(protocol.chat_completion(
            request_id, self.text_model, result.text, finish_reason(reader, result.finish_reason),
            protocol.usage(result.prompt_tokens, result.completion_tokens),
            result.logprobs, [_shaped(choice, shape) for choice in result.other_choices],
            message))

    async def _chat_messages(self, body: protocol.ChatCompletionRequest, media: DecodedMedia,
                             deadline: float) -> list[dict[str, str]]:
        """The chat as text: image and audio parts go through the pipeline's stages, side by
        side, and what they showed takes their place in the prompt."""
        if not media:
            return body.plain_messages()
        perceived = await self.pipeline.perceive_media(media, deadline)
        return with_system_prompt(body.plain_messages(perceived))

    def _chat_key(self, body: protocol.ChatCompletionRequest, media: DecodedMedia,
                  params: SamplingParams) -> tuple:
        """What a chat's answer depends on, known before any stage runs: its text, its media
        (their bytes, hashed in the key) and the versions of the models that perceive them,
        so a cached answer costs no stage at all."""
        messages = body.plain_messages()
        if not media:
            return messages, params
        perceivers = {name: self.cache.versions[name]
                      for name in (self.clip_model, self.whisper_model)}
        parts = [(part.message, part.part, part.kind, data) for part, data in media]
        return messages, parts, params, perceivers

    async def _cached(self, request: Request, route: str, model: str, args: Any,
                      reply_type: type[Reply], compute: Callable[[], Awaitable[Reply]],
                      cacheable: bool = True) -> Any:
        """A replica's reply through the response cache, which keeps its payload."""
        async def payload() -> dict[str, Any]:
            return (await compute()).payload()
        return reply_type.from_payload(await self.cache.one(request, route, model, args,
                                                            payload, cacheable))

    def _sampling(self, body: protocol.ChatCompletionRequest | protocol.CompletionRequest,
                  shape: AnswerShape | None = None) -> SamplingParams:
        max_tokens = body.requested_max_tokens() or self.config.text.default_max_tokens
        return SamplingParams(max_tokens=max_tokens, temperature=body.temperature,
                              top_p=body.top_p, seed=body.seed, stop=body.stop_list(),
                              json_schema=shape.json_schema if shape else None,
                              tools=shape.tools if shape else None, **body.sampling_fields())

    async def _stream_chat(self, request: Request, request_id: str, messages: list[dict],
                           params: SamplingParams, body: protocol.ChatCompletionRequest,
                           shape: AnswerShape) -> Response:
        clock = TokenClock(request.url.path, request.state.timing, self.slo)
        stream = await TokenStream.open(self.text, messages, params, request.state.deadline,
                                        self.limits.stream_idle_timeout_s, clock)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = ChatChunks(request_id, self.text_model, include_usage,
                            lambda: self._final_timing(request, clock.timing),
                            [reader_for(shape) for _ in range(params.n)])
        return sse_response(_chat_events(chunks, stream))

    # -- completions ------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        """Each prompt completed as it is (no chat template), one choice per prompt, through
        the same text calls, limits and cache as chat."""
        require_media_type(request, *JSON_TYPES)
        body = self._json(await self._body(request), protocol.CompletionRequest)
        self._check_model(body.model, self.text_model)
        limits.check_completions(body, self.config)
        params = self._sampling(body)
        prompts = body.prompts()
        echoes = prompts if body.echo else [""] * len(prompts)
        request_id = protocol.new_id("cmpl")
        if body.stream:
            return await self._stream_completions(request, request_id, prompts, echoes,
                                                  params, body)

        async def complete() -> dict[str, Any]:
            replies = await asyncio.gather(*(
                self.text.call("generate", prompt, params, deadline=request.state.deadline,
                               alongside=len(prompts) > 1)
                for prompt in prompts))
            return {"choices": [reply.payload() for reply in replies]}
        answer = await self.cache.one(request, cache.COMPLETIONS, self.text_model,
                                      (prompts, params), complete,
                                      cacheable=params.temperature == 0)
        replies = [CompletionReply.from_payload(choice) for choice in answer["choices"]]
        return JSONResponse(protocol.text_completion(
            request_id, self.text_model, _completion_choices(replies, echoes, body.logprobs),
            protocol.usage(sum(reply.prompt_tokens for reply in replies),
                           sum(reply.completion_tokens for reply in replies))))

    async def _stream_completions(self, request: Request, request_id: str, prompts: list[str],
                                  echoes: list[str], params: SamplingParams,
                                  body: protocol.CompletionRequest) -> Response:
        clock = TokenClock(request.url.path, request.state.timing, self.slo)
        streams = await open_streams(self.text, prompts, params, request.state.deadline,
                                     self.limits.stream_idle_timeout_s, clock)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = CompletionChunks(request_id, self.text_model, len(prompts), include_usage,
                                  lambda: self._final_timing(request, clock.timing),
                                  params.n, body.logprobs)
        return sse_response(completion_events(streams, echoes, chunks))

    # -- embeddings -------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = self._json(await self._body(request), protocol.EmbeddingRequest)
        image_model = self.clip_model + protocol.IMAGE_MODEL_SUFFIX
        self._check_model(body.model, (self.clip_model, image_model))
        limits.check_embeddings(body, self.config)
        inputs = body.inputs()
        options = {"deadline": request.state.deadline, "idempotent": True}
        if body.model == image_model:
            method, items = "embed_images", [decode_base64(item, f"input[{i}]")
                                             for i, item in enumerate(inputs)]
        else:
            method, items = "embed_texts", inputs
        async def embed(missing: list) -> list:
            return (await self.vision.call(method, missing, **options)).vectors
        vectors = await self.cache.each(request, cache.EMBEDDINGS, body.model, items, embed)
        if body.dimensions is not None and body.dimensions != len(vectors[0]):
            raise InvalidRequest(f"{body.model} has {len(vectors[0])} dimensions", "dimensions")
        data = [{"object": "embedding", "index": i,
                 "embedding": protocol.encode_embedding(v, body.encoding_format)}
                for i, v in enumerate(vectors)]
        tokens = 0 if body.model == image_model else sum(len(t.split()) for t in inputs)
        return JSONResponse({"object": "list", "model": body.model, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # -- audio ------------------------------------------------------------------------------

    async def transcriptions(self, request: Request) -> Response:
        """Speech to text in its language (multipart: file, model, language, response_format,
        timestamp_granularities[])."""
        upload, form = await self._audio_form(request, protocol.TranscriptionForm)
        speech = SpeechRequest(form.language, "transcribe", form.words())
        return await self._speech(request, cache.TRANSCRIPTIONS, upload, form, speech)

    async def translations(self, request: Request) -> Response:
        """Speech in any language the model knows to English text (multipart: file, model,
        response_format)."""
        upload, form = await self._audio_form(request, protocol.TranslationForm)
        return await self._speech(request, cache.TRANSLATIONS, upload, form,
                                  SpeechRequest(task="translate"))

    async def _audio_form(self, request: Request, model: type[M]) -> tuple[UploadFile, M]:
        require_media_type(request, "multipart/form-data")
        body = await self._body(request)
        upload, form = await read_audio_form(replayed(request, body), model)
        self._check_model(form.model, (self.whisper_model, "whisper-1"))
        return upload, form

    async def _speech(self, request: Request, route: str, upload: UploadFile,
                      form: protocol.TranslationForm, speech: SpeechRequest) -> Response:
        audio = await upload.read()
        result = await self._cached(
            request, route, self.whisper_model, (audio, speech), TranscriptReply,
            lambda: self.audio.call("speech", audio, speech,
                                    deadline=request.state.deadline, idempotent=True))
        content, media_type = format_transcription(result.payload(), form.response_format,
                                                   speech.task, speech.words)
        if media_type == "application/json":
            return JSONResponse(content)
        return PlainTextResponse(content, media_type=media_type)

    # -- pipeline ---------------------------------------------------------------------------

    async def run_pipeline(self, request: Request) -> Response:
        require_media_type(request, *JSON_TYPES)
        body = self._json(await self._body(request), protocol.PipelineRequest)
        limits.check_pipeline(body, self.config)
        audio = decode_base64(body.audio, "audio") if body.audio else None
        image = decode_base64(body.image, "image") if body.image else None
        deadline = request.state.deadline
        if body.stream:
            clock = TokenClock(request.url.path, request.state.timing, self.slo)
            events = await self.pipeline.stream(body, audio, image, deadline,
                                                self.limits.stream_idle_timeout_s, clock)
            return sse_response(_sse_with_done(
                events, lambda: self._final_timing(request, clock.timing)))
        return JSONResponse(await self.pipeline.run(body, audio, image, deadline))

    async def _body(self, request: Request) -> bytes:
        """The request's body, at most max_body_bytes, all arrived by its deadline."""
        return await read_body(request, self.limits.max_body_bytes, request.state.deadline)

    def _json(self, body: bytes, model: type[M]) -> M:
        return parse_json(body, model, self.limits.max_json_depth)

    def _final_timing(self, request: Request, timing: RequestTiming) -> dict[str, str]:
        """The stream's whole Server-Timing, for its final event, if the tenant may see it."""
        return diagnostics.final_event(
            self._shows_diagnostics(request),
            timing.header() if self.observability.server_timing else None)


def _completion_choices(replies: list[CompletionReply], echoes: list[str],
                        logprobs: int | None) -> list[dict[str, Any]]:
    """Every prompt's choices, prompt-major, each with its echo and its legacy logprobs."""
    return [{"text": echo + choice["text"], "finish_reason": choice["finish_reason"],
             "logprobs": None if logprobs is None
             else LegacyLogprobs(logprobs).shaped(choice["logprobs"] or [])}
            for echo, reply in zip(echoes, replies, strict=True) for choice in reply.choices()]


def _count_cache(route: str, what: str, n: int) -> None:
    """The cache's counts, labelled with the route's path like every other ingress metric."""
    metrics.count_cache(CACHE_ROUTE_PATHS[route], what, n)


class ChatChunks:
    """A chat stream's events as OpenAI's chunks (token_stream.Renderer), each of its choice
    (`index`): every choice's role first, its text (and logprobs) as it comes, every choice's
    finish reason at the end."""

    def __init__(self, request_id: str, model: str, include_usage: bool,
                 final_timing: Callable[[], dict[str, str]],
                 readers: list[AnswerReader] | None = None) -> None:
        self.request_id, self.model = request_id, model
        self.include_usage, self.final_timing = include_usage, final_timing
        self.readers = readers or [TextReader()]  # each choice's text as content or tool calls
        self.choices = len(self.readers)

    def start(self) -> str:
        return "".join(sse_event(protocol.chat_chunk(self.request_id, self.model,
                                                     {"role": "assistant", "content": ""},
                                                     index=index))
                       for index in range(self.choices))

    def token(self, delta: TokenDelta) -> str:
        return self._deltas(self.readers[delta.index].feed(delta.text), delta.index,
                            delta.logprobs)

    def end(self, end: StreamEnd) -> str:
        reasons = end.every_finish_reason()
        final = ""
        for index, (reader, reason) in enumerate(zip(self.readers, reasons, strict=True)):
            final += self._deltas(reader.finish(), index)
            chunk = protocol.chat_chunk(self.request_id, self.model, {},
                                        finish_reason(reader, reason), index=index)
            final += sse_event({**chunk, **self.final_timing()} if index == len(reasons) - 1
                               else chunk)
        if self.include_usage:
            usage = protocol.usage(end.prompt_tokens, end.completion_tokens)
            final += sse_event(protocol.chat_chunk(self.request_id, self.model, {},
                                                   usage_=usage, with_choice=False))
        return final

    def error(self, error: ServeError) -> str:
        return sse_event(error_body(error))

    def _deltas(self, deltas: list[dict[str, Any]], index: int = 0,
                logprobs: list[dict] | None = None) -> str:
        """A choice's deltas as chunks; its tokens' logprobs ride on the first (on an empty
        delta when the reader holds the text back)."""
        if logprobs and not deltas:
            deltas = [{}]
        return "".join(sse_event(protocol.chat_chunk(self.request_id, self.model, delta,
                                                     index=index,
                                                     logprobs=logprobs if i == 0 else None))
                       for i, delta in enumerate(deltas))


def _shaped(choice: dict[str, Any], shape: AnswerShape) -> dict[str, Any]:
    """Another choice of a chat's answer with its message and finish reason read as the first
    choice's are (tool calls, or content)."""
    reader = reader_for(shape)
    return {**choice, "message": whole_message(reader, choice["text"]),
            "finish_reason": finish_reason(reader, choice["finish_reason"])}


async def _chat_events(chunks: ChatChunks, stream: TokenStream) -> AsyncIterator[str]:
    yield chunks.start()
    async for chunk in stream.relay(chunks):
        yield chunk
    yield sse_event("[DONE]")


async def _sse_with_done(events: AsyncIterator[dict],
                         final_timing: Callable[[], dict[str, str]]) -> AsyncIterator[str]:
    try:
        async for event in events:
            if event.get("type") == "done":
                event = {**event, **final_timing()}
            yield sse_event(event)
    except Exception as exc:  # before the stream's events: its own errors come in-band
        yield sse_event({"type": "error", **error_body(in_band(exc))["error"]})
    yield sse_event("[DONE]")


async def _finally(iterator: AsyncIterator, done: Callable[[], None]) -> AsyncIterator:
    try:
        async for item in iterator:
            yield item
    finally:
        done()
