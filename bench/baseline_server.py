"""The baseline stack: the app's three models behind one plain FastAPI/uvicorn process, with no
Ray and no batching, serving the same routes so the same workloads run against it.

    python -m bench.baseline_server --port 8001 [--threads 1] [--model-dir /tmp/mmstore]

What it leaves out is what the benchmark measures: Ray Serve's batching across requests
(@serve.batch) and replica groups (several copies of a model, each with its own cores).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bench.baseline_models import BaselineModels
from deployments.engines.open_clip_engine import ImageDecodeError
from deployments.engines.whisper import AudioDecodeError
from serve_app import protocol
from serve_app.core.errors import InvalidRequest, ServeError
from serve_app.core.generation import SamplingParams
from serve_app.core.models import default_model_dir
from serve_app.http import decode_base64, parse_json, sse_event, sse_response
from serve_app.http_errors import HttpError, error_response
from serve_app.prompts import pipeline_messages
from serve_app.subtitles import format_transcription

TEXT_MODEL, CLIP_MODEL, WHISPER_MODEL = "smollm2-135m-instruct", "clip-vit-b-32", "whisper-base"
DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT = 128, 1024


def create_app(models: BaselineModels) -> FastAPI:
    app = FastAPI(title="mmserve baseline (no Ray, no batching)")

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, error: ServeError) -> Response:
        return error_response(error)

    @app.exception_handler(ImageDecodeError)
    @app.exception_handler(AudioDecodeError)
    async def decode_error(request: Request, error: ValueError) -> Response:
        return error_response(HttpError(422, str(error)))

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"ready": True}

    @app.get("/v1/models")
    async def list_models() -> dict:
        names = (TEXT_MODEL, CLIP_MODEL, CLIP_MODEL + "-image", WHISPER_MODEL)
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "baseline"}
                                           for n in names]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = parse_json(await request.body(), protocol.ChatCompletionRequest)
        params = _sampling(body.requested_max_tokens(), body.temperature, body.seed,
                           body.top_p, body.stop_list())
        prompt = models.text.encode_chat(body.plain_messages())
        request_id = protocol.new_id("chatcmpl")
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse_response(_chat_events(models.stream(prompt, params), request_id, usage))
        done = await models.generate(prompt, params)
        return JSONResponse(protocol.chat_completion(
            request_id, TEXT_MODEL, done.text, done.finish_reason,
            protocol.usage(done.prompt_tokens, done.completion_tokens)))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = parse_json(await request.body(), protocol.EmbeddingRequest)
        inputs = body.inputs()
        if body.model == CLIP_MODEL + "-image":
            vectors = await models.embed_images(
                [decode_base64(item, f"input[{i}]") for i, item in enumerate(inputs)])
        else:
            vectors = await models.embed_texts(inputs)
        data = [{"object": "embedding", "index": i,
                 "embedding": protocol.encode_embedding(v, body.encoding_format)}
                for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "model": body.model, "data": data,
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("file: a multipart file field is required", "file")
        result = await models.transcribe(await upload.read(), form.get("language") or None)
        content, media_type = format_transcription(result, str(form.get("response_format",
                                                                        "json")))
        if media_type == "application/json":
            return JSONResponse(content)
        return PlainTextResponse(content, media_type=media_type)

    @app.post("/v1/pipeline")
    async def pipeline(request: Request) -> Response:
        body = parse_json(await request.body(), protocol.PipelineRequest)
        started = time.perf_counter()
        perception = await models.perceive(
            decode_base64(body.audio, "audio") if body.audio else None,
            decode_base64(body.image, "image") if body.image else None, body.labels)
        prompt = models.text.encode_chat(pipeline_messages(body.prompt, perception))
        params = _sampling(body.max_tokens, body.temperature, body.seed)
        if body.stream:
            return sse_response(_pipeline_events(models.stream(prompt, params), perception,
                                                 started))
        llm_started = time.perf_counter()
        done = await models.generate(prompt, params)
        timings = {**perception["timings"], "llm_s": time.perf_counter() - llm_started,
                   "total_s": time.perf_counter() - started}
        return JSONResponse({**_public(perception), "text": done.text,
                             "finish_reason": done.finish_reason,
                             "usage": {"prompt_tokens": done.prompt_tokens,
                                       "completion_tokens": done.completion_tokens},
                             "timings": timings})

    return app


def _sampling(max_tokens: int | None, temperature: float, seed: int | None, top_p: float = 1.0,
              stop: tuple[str, ...] = ()) -> SamplingParams:
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS
    if max_tokens > MAX_TOKENS_LIMIT:
        raise InvalidRequest(f"max_tokens must be at most {MAX_TOKENS_LIMIT}", "max_tokens")
    return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                          seed=seed, stop=stop)


async def _chat_events(deltas: AsyncIterator, request_id: str,
                       include_usage: bool) -> AsyncIterator[str]:
    yield sse_event(protocol.chat_chunk(request_id, TEXT_MODEL, {"role": "assistant",
                                                                 "content": ""}))
    async for delta in deltas:
        if delta.completion is None:
            if delta.text:
                yield sse_event(protocol.chat_chunk(request_id, TEXT_MODEL,
                                                    {"content": delta.text}))
            continue
        done = delta.completion
        yield sse_event(protocol.chat_chunk(request_id, TEXT_MODEL, {}, done.finish_reason))
        if include_usage:
            yield sse_event(protocol.chat_chunk(
                request_id, TEXT_MODEL, {}, usage_=protocol.usage(
                    done.prompt_tokens, done.completion_tokens), with_choice=False))
    yield sse_event("[DONE]")


async def _pipeline_events(deltas: AsyncIterator, perception: dict[str, Any],
                           started: float) -> AsyncIterator[str]:
    yield sse_event({"type": "perception", **_public(perception)})
    timings, llm_started = perception["timings"], time.perf_counter()
    async for delta in deltas:
        if delta.completion is None:
            if delta.text:
                timings.setdefault("llm_ttft_s", time.perf_counter() - llm_started)
                yield sse_event({"type": "token", "text": delta.text})
            continue
        done = delta.completion
        timings.update(llm_s=time.perf_counter() - llm_started,
                       total_s=time.perf_counter() - started)
        yield sse_event({"type": "done", "finish_reason": done.finish_reason,
                         "usage": {"prompt_tokens": done.prompt_tokens,
                                   "completion_tokens": done.completion_tokens},
                         "timings": timings})
    yield sse_event("[DONE]")


def _public(perception: dict[str, Any]) -> dict[str, Any]:
    transcript = perception["transcript"]
    return {"transcript": None if transcript is None else
            {key: transcript[key] for key in ("text", "language", "duration")},
            "labels": perception["labels"]}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1, help="torch/CTranslate2 threads")
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args(argv)
    models = BaselineModels(args.model_dir or str(default_model_dir()), args.threads)
    uvicorn.run(create_app(models), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
