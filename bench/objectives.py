"""Each route's own service-level objective, and which of its bounds one request missed.

The defaults are the app's (deployments/core/config.py `Slo`): chat's first streamed token
within 2 s and whole answer within 30 s, the pipeline's within 5 s and 30 s, embeddings within
2 s, transcriptions within 15 s. A streamed answer must meet both its bounds, a whole answer its
e2e bound; a route with no bound is not judged. A request that failed missed (the app leaves
the 4xx a client caused out of its count; the bench sends none on purpose). Unlike `--slo`
(bench/slo.py: one set of bounds for every route), these follow the route.

    --route-slo chat=20s,chat.ttft=1s,embeddings=500ms,transcriptions=10s,pipeline=20s
    --route-slo ttft=1s                         (every route's TTFT bound)
    --route-slo /v1/embeddings=500ms            (a path, for a route without a short name)

Each entry replaces the app's default for that bound; the rest stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.slo import parse_duration
from deployments.core.config import ROUTE_OBJECTIVES, Slo

# Each objective's own route: the first path that names it (/v1/completions shares chat's).
PATHS = {name: path for path, name in reversed(ROUTE_OBJECTIVES.items())}
ERROR, TTFT, E2E = "error", "ttft", "e2e"


@dataclass(frozen=True)
class Objectives:
    ttft_s: dict[str, float] = field(default_factory=dict)  # by request path
    e2e_s: dict[str, float] = field(default_factory=dict)  # by request path

    @classmethod
    def app_defaults(cls) -> Objectives:
        slo = Slo()
        routes = {path: slo.for_route(path) for path in ROUTE_OBJECTIVES}
        return cls({path: r.ttft_s for path, r in routes.items() if r.ttft_s is not None},
                   {path: r.e2e_s for path, r in routes.items() if r.e2e_s is not None})

    def bounds(self, path: str, stream: bool) -> dict[str, float]:
        """{"ttft": s, "e2e": s}: the bounds a request to `path` is held to."""
        bounds = {TTFT: self.ttft_s[path]} if stream and path in self.ttft_s else {}
        if path in self.e2e_s:
            bounds[E2E] = self.e2e_s[path]
        return bounds

    def describe(self) -> dict[str, Any]:
        return {"ttft_s": dict(self.ttft_s), "e2e_s": dict(self.e2e_s)}


def parse_objectives(text: str | None) -> Objectives:
    """The app's defaults with the entries of `text` in their place."""
    defaults = Objectives.app_defaults()
    ttft_s, e2e_s = dict(defaults.ttft_s), dict(defaults.e2e_s)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = (piece.strip() for piece in part.partition("="))
        route, _, bound = name.partition(".")
        if not sep or bound not in ("", TTFT) or not (
                route == TTFT and not bound or route in PATHS or route.startswith("/")):
            raise ValueError(f"bad route SLO {part!r}; use ROUTE=DURATION, ROUTE.ttft=DURATION "
                             f"or ttft=DURATION, with ROUTE one of {', '.join(PATHS)} or /PATH")
        seconds = parse_duration(value)
        if route == TTFT:
            ttft_s = dict.fromkeys({*ttft_s, *PATHS.values()}, seconds)
        elif bound == TTFT:
            ttft_s[PATHS.get(route, route)] = seconds
        else:
            e2e_s[PATHS.get(route, route)] = seconds
    return Objectives(ttft_s, e2e_s)


def missed(record: Any, objectives: Objectives) -> list[str]:
    """What `record` missed: [] when it met its route's objective; ["error"] when it failed;
    else "ttft" and/or "e2e"."""
    if not record.ok:
        return [ERROR]
    values = {TTFT: record.ttft(), E2E: record.e2e()}
    return [name for name, bound in objectives.bounds(record.path, record.stream).items()
            if values[name] is not None and values[name] > bound]
