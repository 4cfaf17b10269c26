"""Client-facing errors: one exception type carrying an HTTP status, shaped like OpenAI's."""

from __future__ import annotations

import math
from typing import Any

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error", 503: "service_unavailable", 504: "timeout",
}


class ServeError(Exception):
    """An error whose message is safe to show the client, with its HTTP status.

    Deployments raise it for bad input (an undecodable image is a 422), and the ingress turns
    it into a JSON body. It survives Ray's exception wrapping because it pickles by args.
    """

    def __init__(self, status: int, message: str, param: str | None = None,
                 retry_after_s: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, param, retry_after_s, headers)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s  # sent as Retry-After (429, 503)
        self.headers = dict(headers or {})  # extra response headers, e.g. WWW-Authenticate

    def response_headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return dict(self.headers)
        # Retry-After is whole seconds; a computed wait of 0.4 s is still "wait a second".
        return {**self.headers, "Retry-After": str(max(1, math.ceil(self.retry_after_s)))}

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "api_error"),
                          "param": self.param, "code": self.status}}


class DeadlineExceeded(ServeError):
    """The request's deadline passed before its work could run: dropped, not computed."""

    def __init__(self, what: str = "the request") -> None:
        super().__init__(504, f"{what} did not finish before its deadline")
        self.args = (what,)
