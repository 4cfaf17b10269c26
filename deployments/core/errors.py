"""Errors whose message is safe to show a client. Each class names what went wrong; none knows
HTTP: the front end maps each class to a status (serve_app/http_errors.py).

They pickle by their constructor's args, so they survive Ray's exception wrapping between a
replica and the ingress.
"""

from __future__ import annotations


class ServeError(Exception):
    """The base class; `param` names the request field at fault, `retry_after_s` tells the
    client when to try again (overload, a replica gone)."""

    def __init__(self, message: str, param: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, param, retry_after_s)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return self.message


class InvalidRequest(ServeError):
    """The request is malformed or asks for what it may not (a bad field, a cap passed)."""


class TooLarge(ServeError):
    """The body or one of its media is larger than its cap (bytes, pixels, seconds)."""


class UnsupportedMediaType(ServeError):
    """The body's or an upload's media type is not one the route takes."""


class Undecodable(ServeError):
    """Well-formed, but its media cannot be decoded (not an image, not audio)."""


class Overloaded(ServeError):
    """The server or one group is at capacity; retry after `retry_after_s`."""


class Unavailable(ServeError):
    """A group has no replica that can serve now; retry after `retry_after_s`."""


class TimedOut(ServeError):
    """The work did not finish in the time it had."""


class DeadlineExceeded(TimedOut):
    """The request's deadline passed before its work could run: dropped, not computed."""

    def __init__(self, what: str = "the request") -> None:
        super().__init__(f"{what} did not finish before its deadline")
        self.args = (what,)


class InternalFailure(ServeError):
    """A bug or an engine failure; the message names the part that failed, never its details."""
