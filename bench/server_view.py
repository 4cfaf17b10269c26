"""The server's side of a run: scrapes Prometheus during the load and turns the scrapes into
time series of replica counts, queue lengths and batch sizes per deployment.

Names as a live Ray 2.60 cluster exports them (Ray adds the 'ray_' prefix):
  ray_serve_replica_processing_queries{deployment, replica}   requests in a replica; every live
                                                              replica reports it, so the
                                                              distinct `replica` tags count them
  ray_serve_deployment_replica_healthy{deployment, replica}   1 per healthy replica
  ray_serve_autoscaling_target_replicas{deployment}           replicas the controller wants
  ray_serve_deployment_queued_queries{deployment, handle}     requests waiting in a router
  ray_mmserve_model_calls_total{deployment, method}           the app's own (replicas/metrics.py)
  ray_mmserve_batch_items_total{deployment, method}           requests those calls served
  ray_mmserve_model_seconds_total{deployment, method}         seconds the model was busy
  ray_mmserve_batch_size_{sum,count}, ray_serve_actual_batch_size_{sum,count}
What the scrapes taught: Ray 2.60 exports histogram sums rebuilt from bucket midpoints (five
batches of size 1 export a sum of 2.5), so the mean batch size here is batch_items/model_calls,
which is exact; and a gauge not refreshed within two export intervals is dropped from the
export (the health gauge is set only at health checks), so held values carry forward.
Ray's agent exports every RAY_metrics_report_interval_ms (10 s by default; clusters that the
bench starts use 5 s), so a series can lag the load by that much.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from bench.prometheus import Sample, parse

PROCESSING = "serve_replica_processing_queries"
GAUGES = {"ongoing": PROCESSING,
          "queued": "serve_deployment_queued_queries",
          "healthy_replicas": "serve_deployment_replica_healthy",
          "target_replicas": "serve_autoscaling_target_replicas"}
HELD_GAUGES = ("healthy_replicas", "target_replicas")
# The controller may report the target from more than one process: take the largest.
MAX_OVER_REPORTERS = ("target_replicas",)
CALLS, ITEMS = "mmserve_model_calls_total", "mmserve_batch_items_total"
BUSY = "mmserve_model_seconds_total"
WANTED = tuple(GAUGES.values()) + (CALLS, ITEMS, BUSY)


class Scraper:
    """Scrapes `urls` every `interval_s` seconds in a background thread; after the load, waits
    `settle_s` (one export interval of Ray's agent) so the last point includes all of it."""

    def __init__(self, urls: list[str], interval_s: float = 5.0, settle_s: float = 5.5) -> None:
        self.urls, self.interval_s, self.settle_s = urls, interval_s, settle_s
        self.scrapes: list[tuple[float, list[Sample]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-scraper")

    def __enter__(self) -> Scraper:
        if self.urls and self.interval_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            time.sleep(self.settle_s)
            self.scrape_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.scrape_once()
            self._stop.wait(self.interval_s)

    def scrape_once(self) -> None:
        samples: list[Sample] = []
        for url in self.urls:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    samples += parse(response.read().decode(errors="replace"), WANTED)
            except (urllib.error.URLError, OSError) as exc:
                if len(self.errors) < 20:
                    self.errors.append(f"{url}: {type(exc).__name__}: {exc}")
        self.scrapes.append((time.time(), samples))


def _deployment(sample: Sample) -> str:
    return sample.labels.get("deployment", "?")


def gauge_totals(samples: list[Sample], metric: str, kind: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for s in samples:
        if s.name == metric:
            d = _deployment(s)
            previous = totals.get(d, 0.0)
            totals[d] = max(previous, s.value) if kind in MAX_OVER_REPORTERS else (
                previous + s.value)
    return totals


def replica_counts(samples: list[Sample]) -> dict[str, int]:
    replicas: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        if s.name == PROCESSING:
            replicas[_deployment(s)].add(s.labels.get("replica", "?"))
    return {deployment: len(names) for deployment, names in replicas.items()}


def counter_deltas(before: list[Sample], after: list[Sample], name: str) -> dict[str, float]:
    """Increase of a counter per 'deployment/method' between two scrapes. A series absent
    before counts from 0 (a replica that started in between), and so does one that went down
    (a restarted replica)."""
    old = {s.key(): s.value for s in before if s.name == name}
    deltas: dict[str, float] = defaultdict(float)
    for s in after:
        if s.name != name:
            continue
        previous = old.get(s.key(), 0.0)
        deltas[f"{_deployment(s)}/{s.labels.get('method', '?')}"] += (
            s.value - previous if s.value >= previous else s.value)
    return dict(deltas)


def mean_batch_sizes(before: list[Sample], after: list[Sample]) -> dict[str, float]:
    calls = counter_deltas(before, after, CALLS)
    items = counter_deltas(before, after, ITEMS)
    return {key: items.get(key, 0.0) / n for key, n in calls.items() if n > 0}


def time_series(scrapes: list[tuple[float, list[Sample]]], t0: float) -> list[dict[str, Any]]:
    """One point per scrape: gauges as scraped (held ones carried forward while Ray leaves
    them out); batch sizes and call rates since the scrape before."""
    points: list[dict[str, Any]] = []
    for i, (at, samples) in enumerate(scrapes):
        point: dict[str, Any] = {"t": at - t0, "replicas": replica_counts(samples)}
        for key, metric in GAUGES.items():
            point[key] = gauge_totals(samples, metric, key)
            if key in HELD_GAUGES and points:
                point[key] = {**points[-1][key], **point[key]}
        if i > 0:
            before_at, before = scrapes[i - 1]
            point["batch_size"] = mean_batch_sizes(before, samples)
            point["model_calls_per_s"] = {k: v / (at - before_at) for k, v in
                                          counter_deltas(before, samples, CALLS).items()}
            # Busy model-seconds per second, over all replicas: 2.0 is two replicas never idle.
            point["model_busy"] = {k: v / (at - before_at) for k, v in
                                   counter_deltas(before, samples, BUSY).items()}
        points.append(point)
    return points


def summary(scrapes: list[tuple[float, list[Sample]]],
            points: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the whole run: mean batch size, model calls, most replicas and longest queues."""
    if len(scrapes) < 2:
        return {}
    first, last = scrapes[0][1], scrapes[-1][1]
    result: dict[str, Any] = {"batch_size": mean_batch_sizes(first, last),
                              "model_calls": counter_deltas(first, last, CALLS),
                              "batch_items": counter_deltas(first, last, ITEMS),
                              "model_seconds": counter_deltas(first, last, BUSY)}
    for key in ("replicas", *GAUGES):
        peaks: dict[str, float] = {}
        for point in points:
            for deployment, value in point.get(key, {}).items():
                peaks[deployment] = max(peaks.get(deployment, 0.0), value)
        result[f"{key}_max"] = peaks
    return result


def server_report(scraper: Scraper | None, t0: float) -> dict[str, Any]:
    if scraper is None or not scraper.scrapes:
        return {"available": False, "targets": scraper.urls if scraper else [],
                "errors": scraper.errors if scraper else [], "series": [], "summary": {}}
    points = time_series(scraper.scrapes, t0)
    return {"available": any(samples for _, samples in scraper.scrapes),
            "targets": scraper.urls, "interval_s": scraper.interval_s,
            "errors": scraper.errors, "series": points,
            "summary": summary(scraper.scrapes, points)}
