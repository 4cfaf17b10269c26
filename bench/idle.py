"""Waiting for the app to be idle between runs: a run that follows an overload could otherwise
start while the replicas still work through what the overload left queued (calls whose client
has had its answer, a 429 or a 504, still wait in Serve's router and the batchers until their
deadline), and measure that backlog instead of its own load. Idle: no deployment holds or
queues a request, in a few scrapes in a row of Ray's metrics (exported every few seconds, so
one scrape can be stale)."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from bench.prometheus import Sample, parse
from bench.server_view import GAUGES

BUSY_GAUGES = (GAUGES["ongoing"], GAUGES["queued"])


def requests_held(samples: list[Sample]) -> float:
    """Requests the deployments hold or queue, over every replica and router."""
    return sum(s.value for s in samples if s.name in BUSY_GAUGES)


def scrape(urls: list[str]) -> list[Sample] | None:
    """The busy gauges of every endpoint; None when one cannot be read."""
    samples: list[Sample] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                samples += parse(response.read().decode(errors="replace"), BUSY_GAUGES)
        except (urllib.error.URLError, OSError):
            return None
    return samples


def wait_until_idle(urls: list[str], timeout_s: float = 180.0, interval_s: float = 2.5,
                    in_a_row: int = 3,
                    read: Callable[[list[str]], list[Sample] | None] = scrape,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds waited until `in_a_row` scrapes in a row show no request held; None when the
    app was still busy (or unreadable) after `timeout_s` (the run then goes on, said so)."""
    started, quiet = clock(), 0
    while quiet < in_a_row:
        if clock() - started > timeout_s:
            print(f"the app still held requests after {timeout_s:g} s; going on",
                  file=sys.stderr, flush=True)
            return None
        samples = read(urls)
        quiet = quiet + 1 if samples is not None and requests_held(samples) == 0 else 0
        if quiet < in_a_row:
            sleep(interval_s)
    return clock() - started
