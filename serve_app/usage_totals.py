"""Usage added up per tenant, per UTC hour and per UTC day, and the JSON that reports it.

A request's counts (serve_app/request_tenant.py, Usage.counts, plus `requests: 1`) are added to
two buckets of its tenant: the hour and the day it ended in. A bucket is a flat dict of counts
named as in the report, model seconds as `model_seconds.GROUP`; the report nests those:

    {"object": "usage", "store": "redis",
     "tenants": {"team-a": {
        "hours": [{"start": "2026-12-07T15:00:00Z", "requests": 12, "prompt_tokens": 3400,
                   "completion_tokens": 800, "images": 3, "audio_seconds": 41.5,
                   "model_seconds": {"text": 12.345, "vision": 0.412}}, ...],
        "days": [{"start": "2026-12-07T00:00:00Z", ...}, ...]}}}

Hours and days come oldest first, only those with a count. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

PERIODS = {"hour": 3600, "day": 86400}
PLURAL = {"hour": "hours", "day": "days"}
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "images", "audio_seconds")
WHOLE = frozenset({"requests", "prompt_tokens", "completion_tokens", "images"})
MODEL_SECONDS = "model_seconds."
SECONDS_DIGITS = 6
BucketKey = tuple[str, str, int]  # (period, tenant, start in epoch seconds)
Counts = dict[str, float]


def period_start(period: str, at: float) -> int:
    """The start (epoch seconds, UTC) of the hour or day `at` falls in."""
    length = PERIODS[period]
    return int(at // length) * length


def iso(start: int) -> str:
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class UsageTotals:
    """Counts per (period, tenant, start): each request added to its hour and its day."""

    def __init__(self) -> None:
        self.buckets: dict[BucketKey, Counts] = {}

    def add(self, tenant: str, counts: Mapping[str, float], at: float) -> None:
        for period in PERIODS:
            self.add_to((period, tenant, period_start(period, at)), counts)

    def add_to(self, key: BucketKey, counts: Mapping[str, float]) -> None:
        bucket = self.buckets.setdefault(key, {})
        for name, value in counts.items():
            bucket[name] = bucket.get(name, 0.0) + value

    def merge(self, other: UsageTotals) -> None:
        for key, counts in other.buckets.items():
            self.add_to(key, counts)

    def take(self) -> UsageTotals:
        """These totals, leaving this one empty."""
        taken = UsageTotals()
        taken.buckets, self.buckets = self.buckets, {}
        return taken

    def drop_before(self, oldest: Mapping[str, int]) -> None:
        """Forgets the buckets that start before `oldest[period]`."""
        self.buckets = {key: counts for key, counts in self.buckets.items()
                        if key[2] >= oldest[key[0]]}

    def __bool__(self) -> bool:
        return bool(self.buckets)


def oldest_kept(now: float, hours_kept: int, days_kept: int) -> dict[str, int]:
    """The start of the oldest hour and day still kept at `now`."""
    return {"hour": period_start("hour", now) - (hours_kept - 1) * PERIODS["hour"],
            "day": period_start("day", now) - (days_kept - 1) * PERIODS["day"]}


def report(buckets: Iterable[tuple[BucketKey, Mapping[str, float]]], store: str) -> dict:
    """The usage report (the module's docstring) of these buckets."""
    tenants: dict[str, dict[str, list[dict]]] = {}
    for (period, tenant, start), counts in sorted(buckets, key=lambda item: item[0][2]):
        if not any(counts.values()):
            continue
        periods = tenants.setdefault(tenant, {"hours": [], "days": []})
        periods[PLURAL[period]].append(row(start, counts))
    return {"object": "usage", "store": store, "tenants": dict(sorted(tenants.items()))}


def row(start: int, counts: Mapping[str, float]) -> dict:
    """One bucket as the report shows it: every count, whole ones as integers."""
    shown: dict = {"start": iso(start)}
    for name in COUNTS:
        value = counts.get(name, 0.0)
        shown[name] = round(value) if name in WHOLE else round(value, SECONDS_DIGITS)
    shown["model_seconds"] = {name.removeprefix(MODEL_SECONDS): round(value, SECONDS_DIGITS)
                              for name, value in sorted(counts.items())
                              if name.startswith(MODEL_SECONDS)}
    return shown
