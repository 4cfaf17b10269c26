"""Sends one request with aiohttp and records when each part of the answer arrived.

Streamed answers (server-sent events) are read line by line: the arrival of every token event
is stamped, so TTFT and inter-token latencies are measured at the client, as users see them.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import aiohttp

from bench.records import RequestRecord
from bench.speech import word_error_rate
from bench.workloads.base import CHAT, EMBEDDING, PIPELINE, TRANSCRIPTION, RequestSpec

ERROR_TEXT_LIMIT = 300
# The key this client sends as a Bearer token when a run names none of its own (the server
# reads its plain keys from MMSERVE_API_KEYS).
API_KEY_ENV = "MMSERVE_API_KEY"
# Response headers kept in the record: the response cache's verdict, the server's timings, and
# the tenant's rate limits (present on every answer its limits let through or turned away).
RECORDED_HEADERS = ("X-Cache", "Server-Timing", "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests", "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens")


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """The Bearer header of `api_key`, else of $MMSERVE_API_KEY; none without either."""
    key = api_key or os.environ.get(API_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def _body(spec: RequestSpec) -> tuple[Any, dict[str, str], int]:
    if spec.json is not None:
        data = json.dumps(spec.json, separators=(",", ":")).encode()
        return data, {"Content-Type": "application/json"}, len(data)
    form = aiohttp.FormData()
    size = 0
    for name, value in (spec.form_fields or {}).items():
        form.add_field(name, value)
        size += len(name) + len(value)
    if spec.upload is not None:
        up = spec.upload
        form.add_field(up.field, up.data, filename=up.filename, content_type=up.content_type)
        size += len(up.data)
    return form, {}, size


async def send(session: aiohttp.ClientSession, base_url: str, spec: RequestSpec,
               timeout_s: float, client: int = 0, api_key: str | None = None) -> RequestRecord:
    """`api_key`: the key of this request's tenant (bench/tenant_load.py); None: the
    environment's."""
    record = RequestRecord(route=spec.route, start=time.time(), path=spec.path,
                           stream=spec.stream,
                           items=spec.items, audio_duration_s=spec.audio_duration_s,
                           client=client)
    started = time.perf_counter()
    data, headers, record.request_bytes = _body(spec)
    headers.update(auth_headers(api_key))
    try:
        async with session.post(base_url + spec.path, data=data, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            record.status = response.status
            record.retry_after = response.headers.get("Retry-After")
            record.headers = {name: response.headers[name] for name in RECORDED_HEADERS
                              if name in response.headers}
            if spec.stream and response.status == 200:
                await _read_events(response, spec, record, started)
            else:
                body = await _read_all(response, record, started)
                _read_body(spec, record, body)
    except TimeoutError:
        record.error = f"timed out after {timeout_s:g} s"
    except aiohttp.ClientError as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_LIMIT]
    record.end = time.perf_counter() - started
    return record


async def _read_all(response: aiohttp.ClientResponse, record: RequestRecord,
                    started: float) -> bytes:
    chunks = []
    while chunk := await response.content.readany():
        if record.first_byte is None:
            record.first_byte = time.perf_counter() - started
        chunks.append(chunk)
    body = b"".join(chunks)
    record.response_bytes = len(body)
    return body


def _read_body(spec: RequestSpec, record: RequestRecord, body: bytes) -> None:
    if not 200 <= record.status < 300:
        record.error = body.decode(errors="replace")[:ERROR_TEXT_LIMIT] or "empty error body"
        return
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        record.error = "the response is not JSON"
        return
    if spec.kind in (CHAT, PIPELINE):
        _take_usage(record, payload.get("usage"))
        record.stages = _stage_times(payload.get("timings"))
    elif spec.kind == EMBEDDING:
        record.usage = _usage_fields(payload.get("usage"))
        if len(payload.get("data", ())) != spec.items:
            record.error = (f"expected {spec.items} embeddings, got "
                            f"{len(payload.get('data', ()))}")
    elif spec.kind == TRANSCRIPTION and spec.reference_text is not None:
        record.wer = word_error_rate(spec.reference_text, payload.get("text", ""))


async def _read_events(response: aiohttp.ClientResponse, spec: RequestSpec,
                       record: RequestRecord, started: float) -> None:
    async for raw in response.content:
        now = time.perf_counter() - started
        if record.first_byte is None:
            record.first_byte = now
        record.response_bytes += len(raw)
        line = raw.decode(errors="replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        _take_event(spec, record, json.loads(data), now)
    if record.output_tokens is None:
        record.output_tokens = len(record.token_times)


def _take_event(spec: RequestSpec, record: RequestRecord, event: dict, now: float) -> None:
    if spec.kind == PIPELINE:
        kind = event.get("type")
        if kind == "token" and event.get("text"):
            record.token_times.append(now)
        elif kind == "done":
            _take_usage(record, event.get("usage"))
            record.stages = _stage_times(event.get("timings"))
            record.server_timing = event.get("server_timing")
        elif kind == "error":
            record.error = f"stream error: {event.get('message')}"[:ERROR_TEXT_LIMIT]
        return
    if "error" in event:
        record.error = f"stream error: {event['error']}"[:ERROR_TEXT_LIMIT]
        return
    for choice in event.get("choices") or ():
        if (choice.get("delta") or {}).get("content"):
            record.token_times.append(now)
    _take_usage(record, event.get("usage"))
    if "server_timing" in event:  # the final chunk's: the whole stream's stages
        record.server_timing = event["server_timing"]


def _take_usage(record: RequestRecord, usage: dict | None) -> None:
    if usage:
        record.prompt_tokens = usage.get("prompt_tokens")
        record.output_tokens = usage.get("completion_tokens")
        record.usage = _usage_fields(usage)


def _usage_fields(usage: dict | None) -> dict[str, float]:
    """The numbers of an answer's `usage` object, as the server sent them."""
    return {name: value for name, value in (usage or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def _stage_times(timings: dict | None) -> dict[str, float]:
    return {name: float(value) for name, value in (timings or {}).items()
            if isinstance(value, int | float)}
