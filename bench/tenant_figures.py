"""One tenant's load against an app with tenants, from its request records (bench/refusals.py
reads each): what its limits let in and turned away, at what rate within the measured window,
what the retries after a Retry-After got, what the clients were told the requests used, and
which ingress replicas counted them. No Ray here, so the unit tier checks it on synthetic
records.

`told` is what the answers told the clients, over every record (warm-up and retries
included, as the app counts them all): the requests admitted, and the usage of the answers
that succeeded (their `usage` fields' prompt and completion tokens, the images of image
embeddings, the seconds of the audio clips transcribed). The app's usage totals
(GET /v1/usage) should say the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.prometheus import Sample
from bench.records import RequestRecord
from bench.refusals import is_limits_refusal, retry_after_s, was_admitted, was_shed

IMAGE_ROUTES = ("image-embedding",)
USAGE_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds")
TENANT_REQUESTS = "mmserve_tenant_requests_total"


def told_usage(records: Iterable[RequestRecord]) -> dict[str, float]:
    """What the answers told the clients these requests used, by the usage report's names;
    `no_response`: requests that got no answer, which the app may or may not have counted."""
    told = dict.fromkeys(USAGE_COUNTS, 0.0) | {"no_response": 0.0}
    for record in records:
        told["no_response"] += record.status == 0
        if not was_admitted(record):
            continue
        told["requests"] += 1
        if not record.ok:
            continue
        told["prompt_tokens"] += record.usage.get("prompt_tokens", 0)
        told["completion_tokens"] += record.usage.get("completion_tokens", 0)
        told["images"] += record.items if record.route in IMAGE_ROUTES else 0
        told["audio_seconds"] += record.audio_duration_s or 0.0
    return told


def add_told(totals: dict[str, float], told: dict[str, float]) -> dict[str, float]:
    return {name: totals.get(name, 0.0) + told.get(name, 0.0)
            for name in dict.fromkeys([*totals, *told])}


def tenant_figures(records: list[RequestRecord], window_start: float,
                   window_s: float | None) -> dict[str, Any]:
    """A tenant's records in one run: the measured requests (sent in the window from
    `window_start`, epoch seconds, for `window_s`) by what became of them, the rates its
    limits accepted them at, the retries, and what every record told (`told`)."""
    measured = [r for r in records if not r.warmup and not r.retry]
    refusals = [r for r in measured if is_limits_refusal(r)]
    admitted = [r for r in measured if was_admitted(r)]
    tokens = sum(r.usage.get("prompt_tokens", 0) + r.usage.get("completion_tokens", 0)
                 for r in admitted if r.ok)
    retries = [r for r in records if r.retry]
    return {"sent": len(records), "measured": len(measured), "admitted": len(admitted),
            "ok": sum(r.ok for r in measured), "limits_refusals": len(refusals),
            "refusals_with_retry_after": sum(retry_after_s(r) is not None for r in refusals),
            "shed": sum(was_shed(r) for r in measured),
            "shed_by_status": _by_status(r for r in measured if was_shed(r)),
            "no_response": sum(r.status == 0 for r in measured),
            "accepted_requests_per_s": _per_s(len(admitted), window_s),
            "accepted_tokens_per_s": _per_s(tokens, window_s),
            "first_refusal_s": (min(r.start for r in refusals) - window_start
                                if refusals else None),
            "retries": {"sent": len(retries), "admitted": sum(was_admitted(r) for r in retries),
                        "ok": sum(r.ok for r in retries),
                        "refused": sum(is_limits_refusal(r) for r in retries)},
            "told": told_usage(records)}


def _per_s(count: float, window_s: float | None) -> float | None:
    return count / window_s if window_s else None


def _by_status(records: Iterable[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record.status)] = counts.get(str(record.status), 0) + 1
    return dict(sorted(counts.items()))


def requests_by_replica(before: list[Sample], after: list[Sample],
                        tenant: str) -> dict[str, float]:
    """The tenant's admitted requests each ingress replica counted between two scrapes of
    ray_mmserve_tenant_requests_total (Serve tags each replica's series; a series absent
    before counts from 0)."""
    def series(samples: list[Sample]) -> dict[str, float]:
        found: dict[str, float] = {}
        for s in samples:
            if s.name == TENANT_REQUESTS and s.labels.get("tenant") == tenant:
                replica = s.labels.get("replica", "?")
                found[replica] = found.get(replica, 0.0) + s.value
        return found
    old, new = series(before), series(after)
    return {replica: value - old.get(replica, 0.0) if value >= old.get(replica, 0.0) else value
            for replica, value in sorted(new.items())}
