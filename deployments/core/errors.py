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


class UnsupportedParameter(InvalidRequest):
    """A field, or a value of one, that this server does not implement; `code` tells a client
    it from a malformed request: "unsupported_parameter" (the field) or "unsupported_value"."""

    def __init__(self, message: str, param: str, code: str = "unsupported_parameter") -> None:
        super().__init__(message, param)
        self.args = (message, param, code)
        self.code = code


class TooLarge(ServeError):
    """The body or one of its media is larger than its cap (bytes, pixels, seconds)."""


class UnsupportedMediaType(ServeError):
    """The body's or an upload's media type is not one the route takes."""


class Undecodable(ServeError):
    """Well-formed, but its media cannot be decoded (not an image, not audio)."""


class Overloaded(ServeError):
    """The server or one group is at capacity; retry after `retry_after_s`."""


class RateLimited(Overloaded):
    """The tenant is over one of its limits (requests, tokens, images or audio seconds per
    minute, or requests in flight); `retry_after_s` is when its bucket will allow the request."""


class SloUnreachable(Overloaded):
    """Turned away on arrival: the request is predicted to finish past its objective (its
    route's SLO), so running it would spend the model on a miss; `retry_after_s` is when the
    queue ahead is predicted to have drained enough for such a request to make it."""

    def __init__(self, predicted_wait_s: float, objective_in_s: float,
                 retry_after_s: float) -> None:
        when = (f"in {objective_in_s:.2f} s" if objective_in_s >= 0
                else f"{-objective_in_s:.2f} s ago")
        super().__init__(f"the request is predicted to finish in {predicted_wait_s:.2f} s, past "
                         f"its objective {when}", retry_after_s=retry_after_s)
        self.args = (predicted_wait_s, objective_in_s, retry_after_s)
        self.predicted_wait_s = predicted_wait_s
        self.objective_in_s = objective_in_s


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
