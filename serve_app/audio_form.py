"""The multipart body of the audio routes: the one file, and the other fields as a strict
request model (serve_app/protocol.py), so an unknown field is an unsupported parameter here as
it is in a JSON body.

OpenAI's clients send a list field once per value with `[]` after its name
(`timestamp_granularities[]=word`); the name without the brackets is taken too. Any other field
sent twice is a 400, so no value is silently dropped.
"""

from __future__ import annotations

from typing import Any, get_origin

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from deployments.core.errors import InvalidRequest, UnsupportedMediaType
from serve_app.http import M, validate

FILE_FIELD = "file"
LIST_SUFFIX = "[]"
# Enough for every field the routes declare, each list value counted; more is not a request
# these routes take.
MAX_FIELDS = 32


async def read_audio_form(request: Request, model: type[M]) -> tuple[UploadFile, M]:
    """The request's file (checked to be audio) and its other fields as `model`; `request`
    must replay a body already read within its limit (serve_app/http.py: replayed)."""
    form = await _form(request)
    uploads = form.getlist(FILE_FIELD)
    if len(uploads) != 1 or not isinstance(uploads[0], UploadFile):
        raise InvalidRequest("file: one multipart file field is required", FILE_FIELD)
    fields = [(name, value) for name, value in form.multi_items() if name != FILE_FIELD]
    upload = uploads[0]
    _check_audio_type(upload)
    return upload, validate(_as_payload(fields, model), model)


def _as_payload(fields: list[tuple[str, Any]], model: type[M]) -> dict[str, Any]:
    lists = {name for name, field in model.model_fields.items()
             if get_origin(field.annotation) is list}
    payload: dict[str, Any] = {}
    for name, value in fields:
        if isinstance(value, UploadFile):
            raise InvalidRequest(f"{name}: only the file field may be a file", name)
        key = name.removesuffix(LIST_SUFFIX)
        if key in lists:
            payload.setdefault(key, []).append(value)
        elif name in payload:
            raise InvalidRequest(f"{name}: sent more than once", name)
        else:
            payload[name] = value
    return payload


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_files=1, max_fields=MAX_FIELDS)
    except Exception as exc:  # starlette raises several types for broken multipart bodies
        raise InvalidRequest(f"the multipart body could not be parsed: {exc}") from None


def _check_audio_type(upload: UploadFile) -> None:
    media = (upload.content_type or "").split(";")[0].strip().lower()
    if media and not media.startswith(("audio/", "video/")) and media not in (
            "application/octet-stream", "application/ogg"):
        raise UnsupportedMediaType(f"unsupported media type {media!r} for file; send audio "
                                   "(wav, flac, mp3 or ogg)", FILE_FIELD)
