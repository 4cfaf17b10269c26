"""Prometheus metrics of the app, exported through Ray's metrics agent beside ray_serve_*.

Created lazily inside replicas (Ray metrics need a connected worker); Serve adds the
deployment, replica and application tags itself.
"""

from __future__ import annotations

from functools import cache

from ray.serve.metrics import Counter, Histogram

_BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128]
_LATENCY_BOUNDARIES = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]


@cache
def batch_size() -> Histogram:
    return Histogram("mmserve_batch_size", "Requests per model call.",
                     boundaries=_BATCH_BOUNDARIES, tag_keys=("method",))


@cache
def model_calls() -> Counter:
    return Counter("mmserve_model_calls", "Batched model calls.", tag_keys=("method",))


@cache
def batch_items() -> Counter:
    # Exact, unlike the histogram's sum, which Ray 2.60 exports from bucket midpoints:
    # mean batch size = batch_items / model_calls.
    return Counter("mmserve_batch_items", "Requests served by batched model calls.",
                   tag_keys=("method",))


@cache
def model_seconds() -> Counter:
    # Its rate is the model's utilisation: 1.0 means the replica never waited for a batch.
    return Counter("mmserve_model_seconds", "Seconds the model spent on batched calls.",
                   tag_keys=("method",))


@cache
def http_requests() -> Counter:
    return Counter("mmserve_http_requests", "HTTP requests by route and status.",
                   tag_keys=("route", "status"))


@cache
def http_latency() -> Histogram:
    return Histogram("mmserve_http_request_seconds", "End-to-end HTTP latency at the ingress.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("route",))


@cache
def pipeline_stage() -> Histogram:
    return Histogram("mmserve_pipeline_stage_seconds", "Wall time of each pipeline stage.",
                     boundaries=_LATENCY_BOUNDARIES, tag_keys=("stage",))


@cache
def tokens() -> Counter:
    return Counter("mmserve_tokens", "Prompt and completion tokens.", tag_keys=("kind",))


def add(counter: Counter, amount: float, tags: dict[str, str]) -> None:
    """counter.inc(amount), skipping 0: Ray's Counter raises ValueError for an amount that is
    not positive, and a completion whose first token is end-of-sequence has 0 tokens."""
    if amount > 0:
        counter.inc(amount, tags=tags)


@cache
def cache_lookups() -> Counter:
    # result: hit, miss (computed), bypass (computed; the client asked, or not cacheable);
    # per input for embeddings.
    return Counter("mmserve_cache_lookups", "Response cache lookups by route and result.",
                   tag_keys=("route", "result"))


@cache
def cache_errors() -> Counter:
    return Counter("mmserve_cache_errors", "Response cache store failures (the request "
                   "computed its answer instead).", tag_keys=("route",))


def count_cache(route: str, what: str, n: int) -> None:
    """The response cache's counts (serve_app/cache.py) as Ray metrics."""
    if what == "error":
        add(cache_errors(), n, {"route": route})
    elif what != "store":
        add(cache_lookups(), n, {"route": route, "result": what})
