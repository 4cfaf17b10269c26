"""A request's objective: the wall-clock time by which the first thing its route owes is due
(its first token, or its whole answer on routes without one; deployments/core/config.py, Slo).

Set once when the ingress admits the request and read by every replica call the request makes
(serve_app/calls.py puts it in the call's context), so each stage's queue can serve the
earliest objective first. A context variable, like the request's timing: the pipeline's
stages run in tasks that inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar

from deployments.core.config import RouteObjective

_objective: ContextVar[float | None] = ContextVar("mmserve_request_objective", default=None)


def start(arrival: float, route: RouteObjective | None) -> float | None:
    """Sets the request's objective from its arrival (epoch seconds) and its route's
    objective; returns it (None for a route without one)."""
    due_s = route.first_due_s() if route is not None else None
    objective = None if due_s is None else arrival + due_s
    _objective.set(objective)
    return objective


def current() -> float | None:
    """The objective of the request this task works for; None outside a request."""
    return _objective.get()
