"""How a ServeError becomes an HTTP response: its status, an OpenAI-shaped JSON body, and
headers (Retry-After, WWW-Authenticate). The only place the app maps errors to HTTP."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

from deployments.core.errors import (
    InternalFailure,
    InvalidRequest,
    Overloaded,
    RateLimited,
    ServeError,
    TimedOut,
    TooLarge,
    Unavailable,
    Undecodable,
    UnsupportedMediaType,
    UnsupportedParameter,
)

STATUS_OF_KIND: dict[type[ServeError], int] = {
    InvalidRequest: 400, TooLarge: 413, UnsupportedMediaType: 415, Undecodable: 422,
    Overloaded: 429, RateLimited: 429, InternalFailure: 500, Unavailable: 503, TimedOut: 504,
}
_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 405: "invalid_request_error", 408: "timeout",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 503: "service_unavailable", 504: "timeout",
}

_HTTP_REASONS = {401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "body_timed_out"}


class HttpError(ServeError):
    """An error only the front end raises, with its status and headers stated: 401, 403, 404,
    405, 408."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, param)
        self.args = (status, message, param, headers)
        self.status = status
        self.headers = dict(headers or {})


def status_of(error: ServeError) -> int:
    if isinstance(error, HttpError):
        return error.status
    for kind in type(error).__mro__:  # Ray's wrapper classes inherit from the original
        if kind in STATUS_OF_KIND:
            return STATUS_OF_KIND[kind]
    return 500


def reason_of(error: ServeError) -> str:
    """A short name for why a request was turned away, for metrics: overloaded, timed_out,
    invalid_request, too_large, unauthorized, forbidden, not_found, ..."""
    if isinstance(error, HttpError):
        return _HTTP_REASONS.get(error.status, str(error.status))
    for kind in type(error).__mro__:
        if kind in STATUS_OF_KIND:
            return _snake(kind.__name__)
    return "internal_failure"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def error_body(error: ServeError) -> dict[str, Any]:
    """OpenAI's error shape; `code` is the status, or what OpenAI calls an unsupported
    parameter or value."""
    status = status_of(error)
    code = error.code if isinstance(error, UnsupportedParameter) else status
    return {"error": {"message": error.message, "type": _TYPES.get(status, "api_error"),
                      "param": error.param, "code": code}}


def error_headers(error: ServeError) -> dict[str, str]:
    headers = dict(error.headers) if isinstance(error, HttpError) else {}
    if error.retry_after_s is not None:
        # Retry-After is whole seconds; a computed wait of 0.4 s is still "wait a second".
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return headers


def error_response(error: ServeError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=status_of(error),
                        headers=error_headers(error))
