"""HTTP plumbing for the ingress: bounded body reading, JSON parsing, SSE, error responses."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import StreamingResponse

from deployments.core.config import IngressSettings
from deployments.core.deadline import remaining
from deployments.core.errors import (
    InvalidRequest,
    TooLarge,
    UnsupportedMediaType,
    UnsupportedParameter,
)
from serve_app.http_errors import HttpError
from serve_app.strict_fields import UNSUPPORTED_VALUE, reject_unknown_fields, unsupported

M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_JSON_DEPTH: int = IngressSettings.model_fields["max_json_depth"].default
TIMEOUT_HEADER = "X-Request-Timeout"


async def read_body(request: Request, limit: int, deadline: float | None = None) -> bytes:
    """The body, or a 413 as soon as it (or its declared length) passes the limit, or a 408
    when it has not all arrived by `deadline` (a slow client holds its slot no longer)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is larger than {limit} bytes")
    try:
        return await asyncio.wait_for(_read_within(request, limit), remaining(deadline))
    except TimeoutError:
        raise HttpError(408, "the request body did not arrive before the request's deadline",
                        headers={"Connection": "close"}) from None


async def _read_within(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def timeout_from_header(values: Sequence[str], default_s: float) -> float:
    """The request's timeout: `default_s`, or sooner if the client asks with one
    X-Request-Timeout header (`values`: each one it sent) of positive, finite seconds; a 400
    for any other value, or for the header sent twice."""
    if not values:
        return default_s
    if len(values) > 1:
        raise InvalidRequest(f"send {TIMEOUT_HEADER} once", TIMEOUT_HEADER)
    try:
        seconds = float(values[0])
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise InvalidRequest(f"{TIMEOUT_HEADER} must be a positive number of seconds",
                             TIMEOUT_HEADER)
    return min(seconds, default_s)


def replayed(request: Request, body: bytes) -> Request:
    """A copy of the request whose body (already read and size-checked) can be parsed again."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def require_media_type(request: Request, *accepted: str) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in accepted and not (media == "" and "application/json" in accepted):
        raise UnsupportedMediaType(f"unsupported content type {media or '(none)'!r}; "
                                   f"send {' or '.join(accepted)}")


def parse_json(body: bytes, model: type[M], max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> M:
    """The body as `model`; a 400 for invalid JSON, a non-object, or nesting past max_depth."""
    try:
        payload = json.loads(body)
    except RecursionError:  # json's C parser recurses per level: ~1000 levels exhaust it
        raise InvalidRequest(f"the body is nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int of 4300+ digits
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    if json_depth_exceeds(payload, max_depth):
        raise InvalidRequest(f"the body is nested deeper than {max_depth} levels")
    return validate(payload, model)


def json_depth_exceeds(payload: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than max_depth (the top level is depth 1).

    Walked one level at a time without recursion, so no depth json.loads accepts can
    overflow Python's stack here.
    """
    level, depth = [payload], 1
    while level:
        if depth > max_depth:
            return True
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below += [child for child in children if type(child) is dict or type(child) is list]
        level, depth = below, depth + 1
    return False


def validate(payload: dict[str, Any], model: type[M]) -> M:
    """The payload as `model`: a field it does not declare is an unsupported parameter (400,
    serve_app/strict_fields.py), checked before any value; then a bad value is a 400 naming
    its field."""
    reject_unknown_fields(payload, model)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise unsupported(field) from None
        if first["type"] == UNSUPPORTED_VALUE:
            raise UnsupportedParameter(f"{field}: {first['msg']}", field, UNSUPPORTED_VALUE
                                       ) from None
        raise InvalidRequest(f"{field}: {first['msg']}", field or None) from None


def decode_base64(data: str, field: str) -> bytes:
    """Plain base64 or a data URL ('data:image/png;base64,...')."""
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if ";base64" not in header:
            raise InvalidRequest(f"{field}: only base64 data URLs are supported", field)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field}: not valid base64", field) from None


def sse_event(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
