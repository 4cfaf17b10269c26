"""Waiting for an idle app between runs: no deployment holding or queueing a request, in a few
scrapes in a row, on an injected clock."""

from __future__ import annotations

from bench.idle import requests_held, wait_until_idle
from bench.prometheus import Sample


def held(ongoing: float, queued: float = 0.0) -> list[Sample]:
    return [Sample("serve_replica_processing_queries", {"deployment": "ImageEmbedder"}, ongoing),
            Sample("serve_deployment_queued_queries", {"deployment": "ImageEmbedder"}, queued),
            Sample("serve_deployment_replica_healthy", {"deployment": "ImageEmbedder"}, 1.0)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_what_the_deployments_hold_adds_ongoing_and_queued_only():
    assert requests_held(held(3, 4)) == 7 and requests_held(held(0)) == 0


def test_idle_once_three_scrapes_in_a_row_show_nothing_held():
    clock = Clock()
    scrapes = iter([held(5), held(0), held(2, 1), held(0), None, held(0), held(0), held(0)])
    waited = wait_until_idle(["u"], read=lambda urls: next(scrapes), sleep=clock.sleep,
                             clock=clock, interval_s=2.0, in_a_row=3)
    assert waited == 14.0  # seven waits of 2 s: an unreadable scrape counts as busy


def test_a_busy_app_is_given_up_on_after_the_timeout():
    clock = Clock()
    assert wait_until_idle(["u"], timeout_s=10.0, read=lambda urls: held(1),
                           sleep=clock.sleep, clock=clock, interval_s=2.0) is None
