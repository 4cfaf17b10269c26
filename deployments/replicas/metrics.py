"""Prometheus metrics of the app, exported through Ray's metrics agent beside ray_serve_*.

Created lazily inside replicas (Ray metrics need a connected worker); Serve adds the
deployment, replica and application tags itself. Names follow Prometheus's conventions once
exported: Ray adds the `ray_` prefix and `_total` to counters; times are in seconds.
`observability.metrics: false` (set_enabled) turns every one of them into a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ray.serve.metrics import Counter, Gauge, Histogram

_BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128]
_LATENCY_BOUNDARIES = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
_WAIT_BOUNDARIES = [0.0005, 0.001, 0.0025, 0.005, *_LATENCY_BOUNDARIES]
_enabled = True
M = TypeVar("M")


class _Off:
    """What every metric is while metrics are off."""

    def inc(self, *args: Any, **kwargs: Any) -> None: ...
    def observe(self, *args: Any, **kwargs: Any) -> None: ...
    def set(self, *args: Any, **kwargs: Any) -> None: ...


_OFF = _Off()


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def _import_ray_metrics() -> None:
    """Ray's metric classes, imported with the first metric built (inside a replica), so this
    module and those that count through it import without Ray."""
    global Counter, Gauge, Histogram
    from ray.serve.metrics import Counter, Gauge, Histogram


def metric(build: Callable[[], M]) -> Callable[[], M]:
    """`build()` once per process, or a no-op while metrics are off."""

    @functools.cache
    def built() -> M:
        _import_ray_metrics()
        return build()

    @functools.wraps(build)
    def get() -> M:
        return built() if _enabled else _OFF  # type: ignore[return-value]
    return get


@metric
def batch_size() -> Histogram:
    return Histogram("mmserve_batch_size", "Requests per model call.",
                     boundaries=_BATCH_BOUNDARIES, tag_keys=("method",))


@metric
def model_calls() -> Counter:
    return Counter("mmserve_model_calls", "Batched model calls.", tag_keys=("method",))


@metric
def batch_items() -> Counter:
    # Exact, unlike the histogram's sum, which Ray 2.60 exports from bucket midpoints:
    # mean batch size = batch_items / model_calls.
    return Counter("mmserve_batch_items", "Requests served by batched model calls.",
                   tag_keys=("method",))


@metric
def model_seconds() -> Counter:
    # Its rate is the model's utilisation: 1.0 means the replica never waited for a batch.
    return Counter("mmserve_model_seconds", "Seconds the model spent on batched calls.",
                   tag_keys=("method",))


@metric
def http_requests() -> Counter:
    return Counter("mmserve_http_requests", "HTTP requests by route and status.",
                   tag_keys=("route", "status"))


@metric
def http_latency() -> Histogram:
    return Histogram("mmserve_http_request_seconds", "End-to-end HTTP latency at the ingress.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("route",))


@metric
def group_calls() -> Counter:
    return Counter("mmserve_group_calls", "Calls of the ingress to a replica group, by group, "
                   "variant (main or its canary), the variant's version and outcome (ok or "
                   "the error's type); a stream counts once, when its first item came or its "
                   "call failed.", tag_keys=("group", "variant", "version", "outcome"))


@metric
def group_call_latency() -> Histogram:
    return Histogram("mmserve_group_call_seconds", "Calls of the ingress to a replica group "
                     "that were not streams, answered or failed, by group, variant and version.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("group", "variant", "version"))


@metric
def pipeline_stage() -> Histogram:
    return Histogram("mmserve_pipeline_stage_seconds", "Wall time of each pipeline stage.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("stage",))


@metric
def tokens() -> Counter:
    return Counter("mmserve_tokens", "Prompt and completion tokens.", tag_keys=("kind",))


def add(counter: Counter, amount: float, tags: dict[str, str]) -> None:
    """counter.inc(amount), skipping 0: Ray's Counter raises ValueError for an amount that is
    not positive, and a completion whose first token is end-of-sequence has 0 tokens."""
    if amount > 0:
        counter.inc(amount, tags=tags)


@metric
def cache_lookups() -> Counter:
    # result: hit, miss (computed), bypass (computed; the client asked, or not cacheable);
    # per input for embeddings.
    return Counter("mmserve_cache_lookups", "Response cache lookups by route and result.",
                   tag_keys=("route", "result"))


@metric
def cache_errors() -> Counter:
    return Counter("mmserve_cache_errors", "Response cache store failures (the request "
                   "computed its answer instead).", tag_keys=("route",))


@metric
def cache_invalid_entries() -> Counter:
    return Counter("mmserve_cache_invalid_entries", "Response cache entries that failed their "
                   "signature check (planted, altered, or signed with another secret), each "
                   "served as a miss.", tag_keys=("route",))


def count_cache(route: str, what: str, n: int) -> None:
    """The response cache's counts (serve_app/cache.py) as Ray metrics."""
    if what == "error":
        add(cache_errors(), n, {"route": route})
    elif what == "invalid":
        add(cache_invalid_entries(), n, {"route": route})
    elif what != "store":
        add(cache_lookups(), n, {"route": route, "result": what})


@metric
def queue_wait() -> Histogram:
    return Histogram("mmserve_queue_wait_seconds", "Time a request waited in a replica's "
                     "batcher while the model was busy.", boundaries=_WAIT_BOUNDARIES,
                     tag_keys=("method",))


@metric
def batch_wait() -> Histogram:
    return Histogram("mmserve_batch_wait_seconds", "Time a request waited for its batch to "
                     "close while the model was free (the batch window).",
                     boundaries=_WAIT_BOUNDARIES, tag_keys=("method",))


@metric
def model_call() -> Histogram:
    return Histogram("mmserve_model_call_seconds", "Length of the model call each request "
                     "rode in.", boundaries=_WAIT_BOUNDARIES, tag_keys=("method",))


@metric
def queue_length() -> Gauge:
    return Gauge("mmserve_queue_length", "Requests waiting in a replica for the model.",
                 tag_keys=("method",))


@metric
def rejected_requests() -> Counter:
    return Counter("mmserve_rejected_requests", "Requests answered with an error, by route "
                   "and reason (the error's type).", tag_keys=("route", "reason"))


@metric
def time_to_first_token() -> Histogram:
    return Histogram("mmserve_time_to_first_token_seconds", "Streams: from the request's "
                     "arrival at the ingress to its first token.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("route",))


@metric
def inter_token() -> Histogram:
    return Histogram("mmserve_inter_token_seconds", "Streams: time between tokens sent.",
                     boundaries=_WAIT_BOUNDARIES, tag_keys=("route",))


@metric
def slo_requests() -> Counter:
    return Counter("mmserve_slo_requests", "Successful requests by route, and whether they "
                   "met the route's SLO (config slo); goodput is the rate of met=true.",
                   tag_keys=("route", "met"))


# Per tenant, counted by the ingress once a request has ended (serve_app/tenant_usage.py); the
# anonymous API's requests under tenant="anonymous".
@metric
def tenant_requests() -> Counter:
    return Counter("mmserve_tenant_requests", "Requests admitted, by tenant.",
                   tag_keys=("tenant",))


@metric
def tenant_tokens() -> Counter:
    return Counter("mmserve_tenant_tokens", "Prompt and completion tokens the tenant's "
                   "requests used (a text embedding's words as prompt tokens).",
                   tag_keys=("tenant", "kind"))


@metric
def tenant_images() -> Counter:
    return Counter("mmserve_tenant_images", "Images the tenant's requests had embedded or "
                   "labelled.", tag_keys=("tenant",))


@metric
def tenant_audio_seconds() -> Counter:
    return Counter("mmserve_tenant_audio_seconds", "Seconds of audio the tenant's requests "
                   "had transcribed.", tag_keys=("tenant",))


@metric
def tenant_model_seconds() -> Counter:
    # A batched call's whole length for each of its rows: the model's time the tenant's
    # requests rode in, not an exclusive share of it.
    return Counter("mmserve_tenant_model_seconds", "Seconds the replicas' models worked on "
                   "the tenant's calls, by replica group.", tag_keys=("tenant", "group"))
