"""Calling one replica group through its deployment handle: with the request's deadline, a retry
of idempotent calls whose replica died (when they are cheap: serve_app/retry_rule.py), and every
failure mapped to the error a client sees.

    status  when
    429     the group's queue is full (max_queued_requests): Retry-After from its drain rate
    503     the replica died mid-request, or the group cannot take requests: Retry-After
    504     the deadline passed first
    500     a bug: an exception that is none of the above

Each call sends its replica a CallContext (deployments/core/call_protocol.py) as its last
argument: the deadline, and, while the request is being timed (serve_app/request_timing.py), a
request for the stages of its time, which come back in the reply's `stages` (a stream's, in its
StreamEnd) and are added to the request's timing; and the request's tenant with its priority
and weight. What each reply shows the call used (tokens, images, audio seconds, and its model's
seconds from its stages) is added to the tenant's usage for the request
(serve_app/request_tenant.py): so a call made for a tenant always asks for its stages, timed
request or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ray.exceptions import (
    ActorUnavailableError,
    NodeDiedError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)
from ray.serve._private.utils import generate_request_id
from ray.serve.context import _set_request_context
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    RayServeException,
    ReplicaUnavailableError,
)

from deployments.core.call_protocol import CallContext, Reply, StreamEnd
from deployments.core.deadline import expired, remaining
from deployments.core.errors import InternalFailure, Overloaded, ServeError, TimedOut, Unavailable
from deployments.replicas import metrics
from serve_app import request_objective, request_tenant, request_timing
from serve_app.canary_split import MAIN, CanarySplit, Variant
from serve_app.group_load import GroupLoad
from serve_app.request_tenant import RequestTenant, StreamMeter, usage_of
from serve_app.request_timing import GroupCall
from serve_app.retry_rule import RetryRule

# Serve notices a dead replica within a health-check period and starts another; a client that
# comes back after this has a good chance of a live replica, even in a group of one.
REPLICA_DIED_RETRY_AFTER_S = 5
logger = logging.getLogger("ray.serve")
# How Ray's GCS words an actor's death cause when its node died (Ray 2.60, gcs_actor_manager).
NODE_DIED_MESSAGE = "its node has died"
_REPLICA_GONE = (RayActorError, ActorUnavailableError, ReplicaUnavailableError, WorkerCrashedError,
                 NodeDiedError)


class ReplicaDied(Unavailable):
    """The replica serving the request died: safe to retry elsewhere if the call is idempotent.
    `node_lost`: its whole node went, so the call cannot have been what killed it."""

    def __init__(self, what: str, node_lost: bool = False) -> None:
        super().__init__(f"the {what} replica serving this request failed; retry",
                         retry_after_s=REPLICA_DIED_RETRY_AFTER_S)
        self.args = (what, node_lost)
        self.node_lost = node_lost


class ReplicaGroup:
    """One deployment handle as the ingress uses it: `name` is what errors call it. With a
    `split`, each call goes to the deployment (main or canary) it chooses; `version` is the
    main deployment's, for the metrics."""

    def __init__(self, name: str, handle: Any, retry: RetryRule | None = None,
                 split: CanarySplit | None = None, version: str = "") -> None:
        self.name = name
        self.handle = handle
        self.split, self.version = split, version
        self.load = GroupLoad()
        self.retry = retry if retry is not None else RetryRule()
        # Why the group cannot take a call now, known before calling (no replica, and none
        # can be placed: serve_app/group_placement.py); None when nothing is known against it.
        self.refusal: Callable[[], ServeError | None] = lambda: None

    async def call(self, method: str, *args: Any, deadline: float | None,
                   idempotent: bool = False, alongside: bool = False) -> Reply:
        """`handle.method.remote(*args, CallContext(deadline, ...))`, awaited until the
        deadline.

        An idempotent call whose replica died is sent once more (Serve's router has dropped the
        dead replica by then), if it is cheap enough that it is unlikely to have killed that
        replica (`self.retry`) and the deadline leaves time for it. A call whose replica's
        node died is sent once more whatever it costs: its answer never left the replica (a
        stream is never sent again: its first item may have), and it did not take the node
        down. `alongside`: one of several calls of the request to this group at once, each in
        its own task (own_call_id).
        """
        if alongside:
            own_call_id()
        try:
            return await self._call_once(method, args, deadline)
        except ReplicaDied as died:
            if expired(deadline) or not self._may_resend(method, args, idempotent, died):
                raise
            return await self._call_once(method, args, deadline)

    def _variant(self) -> Variant:
        """The deployment this call goes to."""
        if self.split is None:
            return Variant(MAIN, self.version, self.handle)
        return self.split.choose()

    def _count(self, variant: Variant, outcome: str, seconds: float | None = None) -> None:
        tags = {"group": self.name, "variant": variant.name, "version": variant.version}
        metrics.group_calls().inc(tags={**tags, "outcome": outcome})
        if seconds is not None:
            metrics.group_call_latency().observe(seconds, tags=tags)

    def _may_resend(self, method: str, args: tuple, idempotent: bool,
                    died: ReplicaDied) -> bool:
        return (idempotent or died.node_lost) and self.retry.allows(method, args,
                                                                   node_lost=died.node_lost)

    def _refuse_if_unplaceable(self) -> None:
        refused = self.refusal()
        if refused is not None:
            raise refused

    async def _call_once(self, method: str, args: tuple, deadline: float | None) -> Reply:
        self._refuse_if_unplaceable()
        timing = request_timing.current()
        account = request_tenant.current()
        call = GroupCall(self.name, time.time(), 0.0)
        clock = time.perf_counter()
        variant = self._variant()
        response = getattr(variant.handle, method).remote(*args, call_context(deadline, timing,
                                                                              account))
        self.load.started()
        try:
            reply = await asyncio.wait_for(_awaited(response), remaining(deadline))
            if timing is not None and isinstance(reply, Reply):
                call.seconds, call.stages = time.perf_counter() - clock, reply.stages
                timing.add_call(call)
            if account is not None:
                account.usage.add(usage_of(self.name, method, args, reply))
            self._count(variant, "ok", time.perf_counter() - clock)
            return reply
        except asyncio.CancelledError:  # the client went away: so does the replica's work
            response.cancel()
            raise
        except BaseException as exc:
            if isinstance(exc, TimeoutError):
                response.cancel()
            error = self.error(exc)
            self._count(variant, type(error).__name__, time.perf_counter() - clock)
            raise error from None
        finally:
            self.load.finished()

    async def open_stream(self, method: str, *args: Any, deadline: float | None,
                          alongside: bool = False) -> tuple[Any, AsyncIterator]:
        """Starts a streaming call and waits (until the deadline) for its first item, so errors
        before any output still become HTTP statuses. Returns (first item or None, the rest).
        `alongside` as for `call`."""
        if alongside:
            own_call_id()
        self._refuse_if_unplaceable()
        timing = request_timing.current()
        account = request_tenant.current()
        call = GroupCall(self.name, time.time(), 0.0)
        clock = time.perf_counter()
        variant = self._variant()
        stream = getattr(variant.handle.options(stream=True), method).remote(
            *args, call_context(deadline, timing, account))
        iterator = stream.__aiter__()
        self.load.started()
        try:
            first = await asyncio.wait_for(anext(iterator, None), remaining(deadline))
            self._count(variant, "ok")
            if timing is not None:  # until its stages come at the end: the time to this item
                call.seconds = time.perf_counter() - clock
                timing.add_call(call)
            if isinstance(first, StreamEnd):  # a stream with no text
                call.stages = first.stages
        except BaseException as exc:
            stream.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            error = self.error(exc)
            self._count(variant, type(error).__name__)
            raise error from None
        finally:
            self.load.finished()
        meter = StreamMeter(account, self.name)
        meter.seen(first)
        return first, _Cancellable(iterator, stream.cancel, call, clock, meter)

    def error(self, exc: BaseException) -> ServeError:
        """The client-facing error behind a failed call to this group."""
        cause = getattr(exc, "cause", None)
        if isinstance(exc, ServeError):
            return exc
        if isinstance(cause, ServeError):
            return cause
        if isinstance(exc, BackPressureError):
            self.load.rejected()
            return Overloaded(f"the {self.name} group is at capacity; retry later",
                              retry_after_s=self.load.retry_after_s())
        if isinstance(exc, DeploymentUnavailableError):
            return Unavailable(f"the {self.name} group is unavailable",
                               retry_after_s=REPLICA_DIED_RETRY_AFTER_S)
        if _replica_gone(exc):
            return ReplicaDied(self.name, node_lost=_node_lost(exc))
        if isinstance(exc, TimeoutError):
            return TimedOut(f"the {self.name} group did not answer before the deadline")
        name = type(cause if isinstance(exc, RayTaskError) and cause else exc).__name__
        logger.error("a call to the %s group failed: %r", self.name, exc)  # a bug: keep it
        return InternalFailure(f"the {self.name} group failed: {name}")


def own_call_id() -> None:
    """Gives the calls this task makes from now on a Serve request id of their own. Serve's
    router keeps a request's calls waiting for a replica by an id they inherit from the request
    (Ray Serve 2.60): two calls of one request to one group at once would share it, and only
    one of them would ever be assigned. The id the request's log lines carry is kept."""
    _set_request_context(_internal_request_id=generate_request_id())


def call_context(deadline: float | None, timing: Any, account: RequestTenant | None
                 ) -> CallContext:
    """What goes with a call: the request's deadline, objective, timing and tenant. A call
    for a tenant is timed even when its request is not: its stages meter the model's seconds."""
    timed = timing is not None or account is not None
    return CallContext(deadline, timed=timed, objective=request_objective.current(),
                       tenant=account.name if account else None,
                       priority=account.priority if account else "interactive",
                       weight=account.weight if account else 1.0)


class _Cancellable:
    """A stream's remaining items, with `cancel()` to stop the replica's work early. The
    stages of a timed stream's StreamEnd complete the call's timing; what the stream used is
    metered."""

    def __init__(self, iterator: AsyncIterator, cancel: Callable[[], None], call: GroupCall,
                 clock: float, meter: StreamMeter) -> None:
        self._iterator = iterator
        self._cancel = cancel
        self._call, self._clock, self._meter = call, clock, meter

    def cancel(self) -> None:
        self._meter.stopped()
        self._cancel()

    def __aiter__(self) -> _Cancellable:
        return self

    async def __anext__(self) -> Any:
        item = await self._iterator.__anext__()
        self._meter.seen(item)
        if isinstance(item, StreamEnd):
            self._call.seconds = time.perf_counter() - self._clock
            self._call.stages = item.stages
        return item


def _replica_gone(exc: BaseException) -> bool:
    """A replica or its node died; Serve wraps an upstream death in RayServeException."""
    for error in (exc, getattr(exc, "cause", None), exc.__cause__):
        if isinstance(error, _REPLICA_GONE):
            return True
    return isinstance(exc, RayServeException) and "died" in str(exc)


def _node_lost(exc: BaseException) -> bool:
    """The replica died with its node: Ray says so in the actor's death cause."""
    for error in (exc, getattr(exc, "cause", None), exc.__cause__):
        if isinstance(error, NodeDiedError) or (
                isinstance(error, RayActorError) and NODE_DIED_MESSAGE in str(error)):
            return True
    return False


async def _awaited(response: Any) -> Any:
    return await response
