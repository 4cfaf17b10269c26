"""OpenAI's rate-limit headers, from a tenant's buckets after its request's draw:

    x-ratelimit-limit-requests: 600        the per-minute limit
    x-ratelimit-remaining-requests: 599    what the bucket holds now, whole
    x-ratelimit-reset-requests: 100ms      until the bucket is full again

and the same for -tokens; -images and -audio-seconds follow the pattern. A reset is written as
OpenAI writes it (Go's duration format): "100ms", "1s", "6m0s", "1h0m0s". A tenant without a
limit gets no headers for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from serve_app.token_buckets import BucketLevel


def rate_limit_headers(levels: Iterable[BucketLevel]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for bucket in levels:
        headers[f"x-ratelimit-limit-{bucket.limit}"] = str(round(bucket.per_minute))
        headers[f"x-ratelimit-remaining-{bucket.limit}"] = str(bucket.remaining())
        headers[f"x-ratelimit-reset-{bucket.limit}"] = duration(bucket.reset_s())
    return headers


def duration(seconds: float) -> str:
    """Seconds as Go prints a duration, to the millisecond: 0s, 12ms, 1.5s, 6m0s, 1h2m3s."""
    millis = round(max(0.0, seconds) * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text
