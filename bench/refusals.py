"""What became of a request to an app with tenants, read from its record: let in by its
tenant's limits (admitted), turned away by them (a limits refusal), or shed by the app under
load. Standard library only: the load client and the suites' arithmetic both use it.

- A **limits refusal** is a 429 whose message says the tenant is over one of its limits (or at
  its `max_concurrent`): serve_app/tenant_limits.py writes "<tenant> is over its
  requests_per_minute (600); retry in 2 s" and "<tenant> has 16 requests in flight, its
  max_concurrent; ...". It carries a Retry-After computed from the bucket.
- **Admitted**: the answer carries a tenant's `x-ratelimit-limit-*` header (the ingress adds
  them to every answer once the tenant's limits were asked, whatever the answer) and is no
  limits refusal. Such a request is counted in the tenant's usage, whatever its status. A
  request turned away before its limits were asked (the ingress full for its class, Serve's
  proxy queue full) carries none, and is not counted. So this reads admissions only for
  tenants with at least one per-minute limit.
- **Shed**: a 429 or 503 that is no limits refusal: the app turned it away under load (the
  ingress full for its class, a replica group's queue full, Serve's proxy).
"""

from __future__ import annotations

from bench.records import RequestRecord

LIMIT_HEADER_PREFIX = "x-ratelimit-limit-"
LIMITS_MESSAGES = (" is over its ", ", its max_concurrent")
SHED_STATUSES = (429, 503)


def is_limits_refusal(record: RequestRecord) -> bool:
    return record.status == 429 and any(text in (record.error or "")
                                        for text in LIMITS_MESSAGES)


def was_asked_limits(record: RequestRecord) -> bool:
    """The tenant's limits were asked about this request (its answer tells them)."""
    return any(name.lower().startswith(LIMIT_HEADER_PREFIX) for name in record.headers)


def was_admitted(record: RequestRecord) -> bool:
    return was_asked_limits(record) and not is_limits_refusal(record)


def was_shed(record: RequestRecord) -> bool:
    return record.status in SHED_STATUSES and not is_limits_refusal(record)


def retry_after_s(record: RequestRecord) -> float | None:
    """The answer's Retry-After in seconds (whole seconds, as the app sends it); None when
    absent or not a number of seconds."""
    try:
        seconds = float(record.retry_after) if record.retry_after else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None
