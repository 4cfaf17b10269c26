"""The slo suite's arithmetic: the bursty trace at a multiple of the capacity, each policy's
figures from its run's metrics (goodput per route, p95s, 429s apart from other misses), slo
against fifo with the goodput goal, per round and across rounds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.load import burst_schedule
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.rounds import merge
from bench.suites.slo_summary import (
    across_rounds,
    burst_period,
    capacity_of,
    compare,
    goals_met,
    misses_by_stage,
    run_figures,
    summarize,
    trace_spec,
)

CHAT, EMBEDDINGS = "/v1/chat/completions", "/v1/embeddings"
START = 100.0
CALL = "ImageEmbedder/embed_image"


def timing(**stages_ms: float) -> str:
    return ", ".join(f"{name.replace('_', '-')};dur={ms}" for name, ms in stages_ms.items())


def embedding(e2e: float, queue_ms: float = 50, status: int = 200) -> RequestRecord:
    return RequestRecord("image-embedding", START, path=EMBEDDINGS, end=e2e, status=status,
                         error=None if status == 200 else "rejected",
                         headers={"Server-Timing": timing(ingress=5, vision_queue=queue_ms,
                                                          vision_model=100, total=e2e * 1000)})


def chat(ttft: float, queue_ms: float = 100) -> RequestRecord:
    """A stream that starts at START and ends 4 s later, as every run's last answer."""
    return RequestRecord("chat", START, path=CHAT, stream=True, token_times=[ttft, 4.0],
                         end=4.0, status=200, output_tokens=2,
                         headers={"Server-Timing": timing(ingress=5, text_queue=queue_ms,
                                                          total=ttft * 1000)})


def report(records: list[RequestRecord], batch: float) -> dict:
    return {"load": trace_spec(4.5, 120.0, 20.0, seed=1).describe(),
            "metrics": run_metrics(records, {}),
            "server": {"summary": {"batch_size": {CALL: batch}}}}


def fifo_run() -> dict:
    """Over 4 s: 4 embeddings within 2 s, 2 that queued 2.8 s; 2 chats within, 1 whose first
    token came after 2.5 s in the text queue. 6 within their objective."""
    return report([*(embedding(0.5) for _ in range(4)),
                   *(embedding(3.0, queue_ms=2800) for _ in range(2)),
                   chat(0.5), chat(0.5), chat(2.5, queue_ms=2400)], batch=8.0)


def slo_run() -> dict:
    """Over 4 s: 5 embeddings within, 1 turned away with 429; 5 chats within. 10 within."""
    return report([*(embedding(0.5) for _ in range(5)), embedding(0.01, status=429),
                   *(chat(0.5) for _ in range(5))], batch=3.2)


def level(req_s: float) -> dict:
    return {"metrics": {"overall": {"request_throughput": req_s}}}


def one_round(slo_scale: float = 1.0) -> SimpleNamespace:
    runs = {"capacity-c8": level(2.0), "capacity-c16": level(3.0),
            "slo": slo_run(), "fifo": fifo_run()}
    runs["slo"]["metrics"]["overall"]["route_slo"]["requests_per_s"] *= slo_scale
    return SimpleNamespace(runs=runs)


def test_the_trace_is_a_bursty_open_loop_of_whole_burst_periods():
    spec = trace_spec(4.5, 120.0, 20.0, seed=3)
    assert (spec.mode, spec.concurrency, spec.rate, spec.arrivals, spec.seed) == (
        "open", 0, 4.5, "bursty", 3)
    assert (spec.burst_s, spec.burst_factor, spec.burst_period_s) == (10.0, 3.0, 60.0)
    for duration in (30.0, 45.0, 90.0, 120.0, 200.0):
        periods = duration / burst_period(duration)
        assert periods == round(periods) >= 1
    assert burst_period(90.0) == 45.0 and burst_period(200.0) == pytest.approx(200 / 3)


def test_a_window_too_short_for_a_burst_at_3x_is_refused():
    with pytest.raises(ValueError, match="factor"):
        burst_schedule(trace_spec(1.0, 20.0, 20.0, seed=0))


def test_the_capacity_is_the_most_any_closed_loop_level_answered():
    assert capacity_of([level(2.0), level(3.0), level(2.5)]) == 3.0


def test_requests_turned_away_are_counted_apart_from_other_failures():
    assert misses_by_stage({"error": 5, "vision-queue": 2}, {"429": 3, "503": 2}) == {
        "rejected-429": 3, "error": 2, "vision-queue": 2}
    assert misses_by_stage({"error": 2, "text-queue": 1}, {"429": 2}) == {
        "rejected-429": 2, "text-queue": 1}
    assert misses_by_stage({"vision-model": 1}, {}) == {"vision-model": 1}


def test_a_policys_figures_per_route_from_its_runs_metrics():
    fifo, slo = run_figures(fifo_run()), run_figures(slo_run())
    assert fifo["goodput_requests_per_s"] == pytest.approx(6 / 4.0)
    assert slo["goodput_requests_per_s"] == pytest.approx(10 / 4.0)
    assert fifo["misses_by_stage"] == {"vision-queue": 2, "text-queue": 1}
    embeddings = slo["routes"]["image-embedding"]
    assert embeddings["within_slo"] == pytest.approx(5 / 6)
    assert embeddings["rejected_429_share"] == pytest.approx(1 / 6)
    assert embeddings["misses_by_stage"] == {"rejected-429": 1}
    assert fifo["routes"]["image-embedding"]["e2e_p95"] == pytest.approx(3.0)
    assert fifo["routes"]["chat"]["ttft_p95"] > slo["routes"]["chat"]["ttft_p95"]
    assert (fifo["mean_batch_size"], slo["mean_batch_size"]) == ({CALL: 8.0}, {CALL: 3.2})
    assert fifo["offered_rate"] == 4.5


def test_slo_against_fifo_meets_the_goal_only_at_one_and_a_half_times_the_goodput():
    def figures(goodput: float) -> dict:
        return {"goodput_requests_per_s": goodput, "request_throughput": 3.0, "within_slo": 0.5,
                "routes": {"chat": {"goodput_requests_per_s": goodput, "e2e_p95": 2.0}}}

    assert compare(figures(2.0), figures(3.0))["goodput_requests_per_s"] == pytest.approx(1.5)
    assert compare(figures(2.0), figures(1.0))["routes"]["chat"]["goodput_requests_per_s"] == (
        pytest.approx(0.5))
    assert goals_met(figures(2.0), figures(3.0)) == {"goodput_at_least_1_5x_fifo": True}
    assert goals_met(figures(2.0), figures(2.9)) == {"goodput_at_least_1_5x_fifo": False}
    assert goals_met(figures(0.0), figures(0.0)) == {"goodput_at_least_1_5x_fifo": False}
    assert goals_met(figures(0.0), figures(0.5)) == {"goodput_at_least_1_5x_fifo": True}


def test_a_round_reports_capacity_both_policies_and_its_verdict():
    results, markdown = summarize(one_round())
    assert results["capacity"] == {"levels": {"c8": 2.0, "c16": 3.0}, "requests_per_s": 3.0}
    assert results["slo_vs_fifo"]["goodput_requests_per_s"] == pytest.approx(10 / 6)
    assert results["goals_met"] == {"goodput_at_least_1_5x_fifo": True}
    assert "the most, 3 req/s, is the capacity" in markdown
    assert "a mean of 4.5 req/s (1.5x), bursts of 10 s at 3x every 60 s, seed 1" in markdown
    assert "| image-embedding | 1 | 1.25 | 1.25 | 67% | 83% |" in markdown
    assert "| all routes: vision-queue | 2 | 0 |" in markdown
    assert "| image-embedding: rejected-429 | 0 | 1 |" in markdown
    assert "| chat: text-queue | 1 | 0 |" in markdown
    assert f"| {CALL} | 8 | 3.2 |" in markdown
    assert "| within-SLO req/s >= 1.5x fifo's | 1.67 | met |" in markdown


def test_a_round_without_both_policies_has_no_verdict():
    runs = {"capacity-c8": level(2.0)}
    results, _ = summarize(SimpleNamespace(runs=runs))
    assert "goals_met" not in results and results["capacity"]["requests_per_s"] == 2.0


def test_across_rounds_the_goal_needs_every_round_and_the_table_shows_both_policies():
    merged = merge([summarize(one_round(scale))[0] for scale in (1.0, 0.8, 1.2)])
    assert merged["goals_met"]["goodput_at_least_1_5x_fifo"]["verdict"] == "not met: 2/3"
    text = across_rounds(merged, [1, 2, 3])
    assert "| within-SLO req/s | 1.5 (1.5-1.5) | 2.5 (2-3) | 1.67 (1.33-2) |" in text
    assert "| chat TTFT p95 s | 2.3 (2.3-2.3) | 0.5 (0.5-0.5) |" in text
    assert "| image-embedding e2e p95 s |" in text
    assert "image-embedding TTFT" not in text  # a route with no first token has no row
    assert across_rounds(merge([{"policies": {}}] * 3), [1, 2, 3]) == ""
