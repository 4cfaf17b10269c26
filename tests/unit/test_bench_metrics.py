"""The bench's metric math on synthetic timelines whose answers are known by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench.arrivals import arrival_times, split_round_robin
from bench.load import LoadSpec, client_plans, split_evenly
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.stats import summarize


def streamed(start: float, token_times: list[float], end: float, **kw) -> RequestRecord:
    return RequestRecord("chat", start, stream=True, token_times=token_times, end=end,
                         status=200, output_tokens=len(token_times), **kw)


@pytest.fixture
def timeline() -> list[RequestRecord]:
    return [
        streamed(100.0, [0.2, 0.3, 0.5, 0.6], 0.7, prompt_tokens=10),   # TTFT .2, gaps .1 .2 .1
        streamed(100.5, [0.4, 0.6], 0.8, prompt_tokens=10),             # TTFT .4, gap .2
        RequestRecord("chat", 101.0, end=0.05, status=503, error="overloaded"),
        RequestRecord("chat", 101.0, end=1.0, status=200, output_tokens=10, prompt_tokens=5),
        streamed(99.0, [5.0, 9.0], 9.5, warmup=True),                   # warm-up: left out
        RequestRecord("transcription", 100.2, end=0.5, status=200, audio_duration_s=2.0,
                      wer=0.25),
    ]


def test_percentiles_interpolate_between_order_statistics():
    summary = summarize(range(1, 101))
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["std"] == pytest.approx(np.std(np.arange(1, 101)))
    assert summary["count"] == 100 and summary["min"] == 1 and summary["max"] == 100


def test_summary_of_nothing_is_none_and_nones_are_skipped():
    assert summarize([]) is None
    assert summarize([None, 2.0, None])["p99"] == 2.0


def test_ttft_itl_and_tpot_of_one_request():
    record = streamed(0.0, [0.2, 0.3, 0.5, 0.6], 0.7)
    assert record.ttft() == pytest.approx(0.2)
    assert record.itls() == pytest.approx([0.1, 0.2, 0.1])  # the first token is not a gap
    assert record.tpot() == pytest.approx((0.7 - 0.2) / 3)


def test_failed_and_unstreamed_requests_have_no_token_latencies():
    failed = streamed(0.0, [0.2, 0.3], 0.4)
    failed.error = "stream error"
    plain = RequestRecord("chat", 0.0, end=1.0, status=200, output_tokens=5)
    assert failed.ttft() is None and failed.itls() == [] and failed.e2e() is None
    assert plain.ttft() is None and plain.itls() == [] and plain.tpot() is None
    assert plain.e2e() == 1.0


def test_run_metrics_on_a_known_timeline(timeline):
    m = run_metrics(timeline, {})
    overall = m["overall"]
    assert m["warmup_excluded"] == 1
    assert m["duration_s"] == pytest.approx(2.0)  # first start 100.0, last end 101.0 + 1.0
    assert overall["requests"] == {"total": 5, "ok": 4, "errors": 1}
    assert overall["errors_by_status"] == {"503": 1}
    assert overall["request_throughput"] == pytest.approx(4 / 2.0)
    assert overall["output_token_throughput"] == pytest.approx((4 + 2 + 10) / 2.0)
    assert overall["ttft"]["mean"] == pytest.approx(0.3)
    assert overall["ttft"]["p90"] == pytest.approx(0.38)
    assert overall["itl"]["count"] == 4  # pooled gaps .1 .2 .1 .2, no TTFT among them
    assert overall["itl"]["mean"] == pytest.approx(0.15)
    assert overall["itl"]["std"] == pytest.approx(0.05)
    assert overall["tpot"]["count"] == 2
    assert overall["e2e"]["max"] == pytest.approx(1.0)
    assert set(m["routes"]) == {"chat", "transcription"}
    audio = m["routes"]["transcription"]
    assert audio["rtf"]["p50"] == pytest.approx(0.25)
    assert audio["audio_seconds_per_s"] == pytest.approx(1.0)
    assert audio["wer_mean"] == pytest.approx(0.25)


def test_goodput_counts_requests_meeting_every_applicable_bound(timeline):
    m = run_metrics(timeline, {"ttft": 0.3, "e2e": 0.9})
    goodput = m["overall"]["goodput"]
    # first chat: ttft .2, e2e .7 -> good; second: ttft .4 -> bad; 503 -> bad;
    # unstreamed: no ttft, e2e 1.0 -> bad; transcription: no ttft, e2e .5 -> good
    assert goodput["good"] == 2
    assert goodput["requests_per_s"] == pytest.approx(2 / 2.0)
    assert goodput["fraction"] == pytest.approx(2 / 5)
    assert m["slo_unchecked"] == []
    assert run_metrics(timeline, {"rtf": 0.1})["overall"]["goodput"]["good"] == 3
    assert run_metrics(timeline, {})["overall"]["goodput"] is None


def test_itl_bound_applies_to_the_longest_gap_of_a_request(timeline):
    good = run_metrics(timeline, {"itl": 0.15})["routes"]["chat"]["goodput"]["good"]
    assert good == 1  # only the unstreamed request: both streams have a 0.2 s gap


def test_poisson_arrivals_have_the_asked_rate_and_are_reproducible():
    times = arrival_times(10.0, random.Random(7), until_s=200.0)
    assert times == arrival_times(10.0, random.Random(7), until_s=200.0)
    assert len(times) == pytest.approx(2000, rel=0.1)
    gaps = np.diff(times)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)  # exponential gaps


def test_low_burstiness_makes_gaps_more_variable_at_the_same_rate():
    times = arrival_times(10.0, random.Random(7), burstiness=0.25, until_s=400.0)
    gaps = np.diff(times)
    assert len(times) == pytest.approx(4000, rel=0.15)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.15)  # 1 / sqrt(shape)


def test_count_bounded_arrivals_count_only_after_the_warmup():
    times = arrival_times(5.0, random.Random(1), count=50, count_after_s=3.0)
    assert sum(t >= 3.0 for t in times) == 50
    assert split_round_robin([1, 2, 3, 4, 5], 2) == [[1, 3, 5], [2, 4]]


def test_closed_loop_plans_share_clients_and_requests_exactly():
    assert split_evenly(10, 3) == [4, 3, 3]
    plans = client_plans(LoadSpec(concurrency=10, duration_s=None, requests=101), 3, 0.0)
    assert [p.concurrency for p in plans] == [4, 3, 3]
    assert sum(p.requests for p in plans) == 101
    assert len(client_plans(LoadSpec(concurrency=2), 4, 0.0)) == 2  # no idle actors


def test_open_loop_plans_split_one_arrival_schedule():
    spec = LoadSpec(concurrency=0, rate=4.0, duration_s=10.0, warmup_s=2.0, seed=3)
    plans = client_plans(spec, 2, 0.0)
    merged = sorted(t for p in plans for t in p.arrivals)
    assert merged == arrival_times(4.0, random.Random(3), until_s=12.0)
    assert all(p.concurrency == 0 for p in plans)
