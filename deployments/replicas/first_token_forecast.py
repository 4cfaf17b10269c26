"""The text replica's forecast of a new request's time to first token, and its admission.

The text group's queue lives inside the engine (vLLM's scheduler, or the transformers
scheduler of scheduled_text.py), so the replica cannot price it from batches of its own as the
batcher does. It keeps instead the requests it has handed to the engine whose first token has
not come yet, each in its place in the engine's order, and learns from the first tokens it
sees. The engine's order is what it says it serves by: the class (interactive before batch)
where it serves by class, then, where it serves tenants by fair share, their virtual start
times (deployments/core/fair_share.py, stamped here as requests arrive: the engine's own are
out of sight), then waiting_queue.serving_key (by arrival, or earliest objective first).

A request's position is 1 + the requests the engine serves before it: those ahead of it when it
was sent, plus those sent later that went ahead of it (a better class, a tenant further behind
its share, an earlier objective), less those ahead that left unserved (cancelled, failed, past
their deadline). Its time to first token is fit as ttft(position) = a + b * position by the
batcher's online least squares with forgetting (latency_model.py): a + b is the first token of
a request that found nothing ahead (its own prefill, between the running rows' steps) and b the
seconds per request ahead, the inverse of the rate at which first tokens come while requests
wait. Every stream's first token is one observation; a request arriving is predicted ttft(1 +
the tracked requests ahead of it now).

Whole (non-streamed) completions: the replica never sees their first token. Each counts as
waiting, ahead of what is behind it in the engine's order, until there is evidence it was
served: a stream behind it got its first token (the engine serves in that order), or it
finished. It is never an observation itself, so a replica serving only whole completions
learns nothing and admits everything. Counting the same way when learning and predicting keeps
the approximation honest: a whole completion still counted while it decodes lengthens the
positions of the observations and of the predictions alike.

Admission, under policy "slo": a request predicted to have its first token past its objective
while requests wait ahead of it is turned away with SloUnreachable, Retry-After the overshoot
(at least a second), and counted "slo_rejected"; with none ahead it is always admitted. Under
"fifo" nothing is turned away, the model still learns, and a request
"slo" would have turned away is counted "slo_predicted_miss", so the two can be compared.
Before its first observation the forecast predicts nothing and admits everything.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from deployments.core.errors import SloUnreachable
from deployments.core.fair_share import ANONYMOUS, FairShares, Share
from deployments.engines.waiting_queue import POLICIES, SortKey, serving_key
from deployments.replicas.batcher import Policy
from deployments.replicas.latency_model import LatencyModel


@dataclass(eq=False)
class _InEngine:
    key: SortKey
    share: Share
    start: float  # its virtual start among its class's tenants
    sent: float = 0.0
    streamed: bool = False
    position: int = 1
    gone: bool = False


class FirstToken:
    """What a tracked call tells the forecast while the engine has its request."""

    def __init__(self, forecast: FirstTokenForecast, request: _InEngine) -> None:
        self._forecast, self._request = forecast, request

    def came(self) -> None:
        """The stream's first output arrived; later calls do nothing."""
        self._forecast._first_token(self._request)


class FirstTokenForecast:
    def __init__(self, serves_by_objective: bool, policy: Policy = "fifo",
                 model: LatencyModel | None = None,
                 on_event: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time, serves_by_class: bool = False,
                 serves_fair_shares: bool = False) -> None:
        """`serves_by_objective`: the engine serves its waiting requests earliest objective
        first, else by arrival; `serves_by_class`: interactive before batch;
        `serves_fair_shares`: the tenants of a class by weighted fair share. `policy` is the
        app's, live: "slo" turns requests away. `clock` gives epoch seconds, the objectives'
        time."""
        _check_policy(policy)
        self.engine_order = "slo" if serves_by_objective else "fifo"
        self.by_class, self.by_fair_share = serves_by_class, serves_fair_shares
        self._shares = FairShares()
        self.policy = policy
        self.model = model if model is not None else LatencyModel()
        self.on_event = on_event or (lambda _event: None)
        self.clock = clock
        self._in_engine: list[_InEngine] = []
        self._arrivals = itertools.count()

    def set_policy(self, policy: Policy) -> None:
        _check_policy(policy)
        self.policy = policy

    def predict(self, objective: float | None, share: Share = ANONYMOUS) -> float | None:
        """Seconds to the first token of a request with `objective` sent now; None before the
        first observation."""
        return self._predict(self._arriving(objective, share))

    @contextmanager
    def track(self, objective: float | None, streamed: bool,
              share: Share = ANONYMOUS) -> Iterator[FirstToken]:
        """Admits a request (SloUnreachable under "slo" when it is predicted past `objective`),
        then tracks it while the body has it in the engine. A stream calls `came()` on its
        first output. Leaving the body normally means the engine served it; leaving it by an
        exception before a first token means it never got to the engine's front."""
        request = self._arriving(objective, share)
        self._admit(request, objective)
        self._send(request, streamed)
        try:
            yield FirstToken(self, request)
        except BaseException:
            self._leave(request, served=False)
            raise
        self._leave(request, served=True)

    def _arriving(self, objective: float | None, share: Share) -> _InEngine:
        """A request arriving now, not yet counted anywhere."""
        key = serving_key(self.engine_order, objective, next(self._arrivals))
        start = self._shares.start(share) if self.by_fair_share else 0.0
        return _InEngine(key, share, start)

    def _before(self, first: _InEngine, second: _InEngine) -> bool:
        """Whether the engine serves `first` before `second`."""
        if self.by_class and first.share.rank != second.share.rank:
            return first.share.rank < second.share.rank
        if self.by_fair_share and first.share.group != second.share.group:
            return (first.start, first.key[-1]) < (second.start, second.key[-1])
        return first.key < second.key

    def _position(self, request: _InEngine) -> int:
        return 1 + sum(1 for other in self._in_engine if self._before(other, request))

    def _predict(self, request: _InEngine) -> float | None:
        return self.model.latency(self._position(request))

    def _admit(self, request: _InEngine, objective: float | None) -> None:
        if objective is None or self._position(request) == 1:
            return  # nothing waits ahead of it: turning it away frees nothing for anyone
        wait = self._predict(request)
        budget = objective - self.clock()
        if wait is None or wait <= budget:
            return
        if self.policy != "slo":
            self.on_event("slo_predicted_miss")
            return
        self.on_event("slo_rejected")
        # A request like this one sent later makes it once the requests ahead have gone on
        # for as long as this one would overshoot.
        raise SloUnreachable(wait, budget, retry_after_s=max(1.0, wait - budget))

    def _send(self, request: _InEngine, streamed: bool) -> None:
        for other in self._in_engine:
            if self._before(request, other):
                other.position += 1  # the new one goes ahead of it
        if self.by_fair_share:
            request.start = self._shares.stamp(request.share)
        request.sent, request.streamed = self.clock(), streamed
        request.position = self._position(request)
        self._in_engine.append(request)

    def _first_token(self, request: _InEngine) -> None:
        if request.gone:
            return
        self.model.observe(request.position, max(0.0, self.clock() - request.sent))
        # Served before it, in the engine's order: the whole completions ahead of it.
        for other in self._in_engine:
            if not other.streamed and self._before(other, request):
                other.gone = True
        self._served(request)

    def _leave(self, request: _InEngine, served: bool) -> None:
        if request.gone:
            return
        if served:
            self._served(request)
            return
        request.gone = True
        self._forget_gone()
        for other in self._in_engine:
            if self._before(request, other):
                other.position = max(1, other.position - 1)

    def _served(self, request: _InEngine) -> None:
        request.gone = True
        self._forget_gone()
        if self.by_fair_share:
            self._shares.reached(request.share.rank, request.start)

    def _forget_gone(self) -> None:
        self._in_engine = [request for request in self._in_engine if not request.gone]


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
