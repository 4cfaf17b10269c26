"""Each route's own service-level objective, and which of its bounds one request missed.

The defaults are the app's (deployments/core/config.py `Slo`): a streamed answer's first token
within `ttft_s` (2 s), and every answer within its path's latency (chat and pipeline 30 s,
embeddings 2 s, transcriptions 15 s). A streamed answer must meet both, a whole answer its
latency; a path with no latency has only the TTFT bound. A request that failed missed (the app
leaves the 4xx a client caused out of its count; the bench sends none on purpose). Unlike
`--slo` (bench/slo.py: one set of bounds for every route), these follow the route.

    --route-slo ttft=1s,chat=20s,embeddings=500ms,transcriptions=10s,pipeline=20s
    --route-slo /v1/embeddings=500ms            (a path, for a route without a short name)

Each entry replaces the app's default for that bound; the rest stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.slo import parse_duration
from deployments.core.config import Slo

PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings",
         "transcriptions": "/v1/audio/transcriptions", "pipeline": "/v1/pipeline"}
ERROR, TTFT, E2E = "error", "ttft", "e2e"


@dataclass(frozen=True)
class Objectives:
    ttft_s: float
    e2e_s: dict[str, float] = field(default_factory=dict)  # by request path

    @classmethod
    def app_defaults(cls) -> Objectives:
        slo = Slo()
        return cls(slo.ttft_s, dict(slo.latency_s))

    def bounds(self, path: str, stream: bool) -> dict[str, float]:
        """{"ttft": s, "e2e": s}: the bounds a request to `path` is held to."""
        bounds = {TTFT: self.ttft_s} if stream else {}
        if path in self.e2e_s:
            bounds[E2E] = self.e2e_s[path]
        return bounds

    def describe(self) -> dict[str, Any]:
        return {"ttft_s": self.ttft_s, "e2e_s": dict(self.e2e_s)}


def parse_objectives(text: str | None) -> Objectives:
    """The app's defaults with the entries of `text` in their place."""
    defaults = Objectives.app_defaults()
    ttft_s, e2e_s = defaults.ttft_s, dict(defaults.e2e_s)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not (name == TTFT or name in PATHS or name.startswith("/")):
            raise ValueError(f"bad route SLO {part!r}; use ttft=DURATION, ROUTE=DURATION with "
                             f"ROUTE one of {', '.join(PATHS)}, or /PATH=DURATION")
        if name == TTFT:
            ttft_s = parse_duration(value)
        else:
            e2e_s[PATHS.get(name, name)] = parse_duration(value)
    return Objectives(ttft_s, e2e_s)


def missed(record: Any, objectives: Objectives) -> list[str]:
    """What `record` missed: [] when it met its route's objective; ["error"] when it failed;
    else "ttft" and/or "e2e"."""
    if not record.ok:
        return [ERROR]
    values = {TTFT: record.ttft(), E2E: record.e2e()}
    return [name for name, bound in objectives.bounds(record.path, record.stream).items()
            if values[name] is not None and values[name] > bound]
