"""What the ingress counts per request beyond status and latency: streams' time to first token
and between tokens, and whether each answer met its route's SLO (goodput)."""

from __future__ import annotations

import time

from deployments.core.config import Slo
from deployments.replicas import metrics
from serve_app.request_timing import RequestTiming


def count_slo(route: str, status: int, seconds: float, slo_s: float | None) -> None:
    """Counts an answer against its route's SLO: an error the client caused (4xx but 429) is
    not counted; a failure of the server, or a 429, did not meet it."""
    if slo_s is None or (400 <= status < 500 and status != 429):
        return
    met = status < 400 and seconds <= slo_s
    metrics.slo_requests().inc(tags={"route": route, "met": str(met).lower()})


class TokenClock:
    """A stream's tokens as they are sent: the first one's time from the request's arrival
    (TTFT, counted against the route's slo ttft_s), the gaps between the rest."""

    def __init__(self, route: str, timing: RequestTiming, slo: Slo) -> None:
        self.route = route
        self.timing = timing
        objective = slo.for_route(route)
        self.slo_s = objective.ttft_s if objective is not None else None
        self._last: float | None = None

    def token(self) -> None:
        now = time.perf_counter()
        tags = {"route": self.route}
        if self._last is None:
            ttft = self.timing.elapsed()
            metrics.time_to_first_token().observe(ttft, tags=tags)
            count_slo(self.route, 200, ttft, self.slo_s)
        else:
            metrics.inter_token().observe(now - self._last, tags=tags)
        self._last = now
