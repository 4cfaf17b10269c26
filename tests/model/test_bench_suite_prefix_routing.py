"""The prefix-routing suite's arithmetic: each mode against default routing, the goals, the
prefix-cache hit rate and the load split from the replicas' own counts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.suites.prefix_routing import HIT, LOOKED_UP, MODES, TWO_REPLICAS, summarize
from cluster.deploy import with_args


def report(ttft_p50: float, ttft_p95: float, goodput: float, errors: int = 0) -> dict:
    return {"load": {"concurrency": 8},
            "metrics": {"overall": {
                "output_token_throughput": 60.0, "prompt_tokens": 20000, "output_tokens": 1600,
                "requests": {"total": 40, "ok": 40 - errors, "errors": errors},
                "ttft": {"p50": ttft_p50, "p95": ttft_p95}, "itl": {"p50": 0.05, "p95": 0.1},
                "goodput": {"requests_per_s": goodput, "good": 30, "fraction": 0.75}}}}


def counts(*replicas: tuple[int, int]) -> dict[str, dict[str, int]]:
    return {f"r{i}": {HIT: hit, LOOKED_UP: looked_up}
            for i, (hit, looked_up) in enumerate(replicas)}


def test_each_mode_is_held_against_default_routing():
    runs = {"default": report(1.0, 3.0, 2.0), "prefix": report(0.5, 2.4, 2.5),
            "ray_prefix": report(0.8, 3.3, 1.8, errors=1)}
    replica_counts = {"default": counts((300, 1000), (200, 1000)),
                      "prefix": counts((800, 1000), (600, 1000)),
                      "ray_prefix": counts((900, 1500), (100, 500))}
    results, markdown = summarize(SimpleNamespace(runs=runs), replica_counts)
    modes = results["modes"]
    assert list(modes) == list(MODES)
    assert modes["default"]["prefix_hit_rate"] == pytest.approx(0.25)
    assert "ttft_p50_vs_default" not in modes["default"]
    prefix = modes["prefix"]
    assert prefix["prefix_hit_rate"] == pytest.approx(0.7)
    assert prefix["ttft_p50_vs_default"] == pytest.approx(0.5)
    assert prefix["ttft_p95_vs_default"] == pytest.approx(0.8)
    assert prefix["goodput_vs_default"] == pytest.approx(1.25)
    assert prefix["goal_ttft_p50_met"] and prefix["goal_goodput_met"]
    ray = modes["ray_prefix"]
    assert ray["replica_token_shares"] == [pytest.approx(0.75), pytest.approx(0.25)]
    assert not ray["goal_ttft_p50_met"] and not ray["goal_goodput_met"]
    assert "| prefix | 0.50 | 2.40 | 2.50 | 75% | 60.0 | 0 | 70% | 50% / 50% | 0.50 | 0.80 | " \
           "1.25 | met | met |" in markdown
    assert "| ray_prefix | 0.80 | 3.30 | 1.80 | 75% | 60.0 | 1 | 50% | 75% / 25% | 0.80 | " \
           "1.10 | 0.90 | NOT met | NOT met |" in markdown
    assert "| default | 1.00 | 3.00 | 2.00 | 75% | 60.0 | 0 | 25% | 50% / 50% | - | - | - | " \
           "- | - |" in markdown


def test_a_missing_mode_or_count_leaves_its_cells_empty():
    results, markdown = summarize(SimpleNamespace(runs={"prefix": report(0.5, 1.0, 1.0)}), {})
    assert results["modes"]["prefix"]["prefix_hit_rate"] is None
    assert "ttft_p50_vs_default" not in results["modes"]["prefix"]
    assert "| prefix | 0.50 | 1.00 | 1.00 | 75% | 60.0 | 0 | - | - |" in markdown


def test_the_text_group_runs_two_replicas_under_each_routing():
    config = {"applications": [{"name": "mmserve", "args": {"text": {
        "autoscaling": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 16},
        "resources": {"num_cpus": 0.5}}}}]}
    text = with_args(config, {"text": {**TWO_REPLICAS, "routing": "prefix"}})[
        "applications"][0]["args"]["text"]
    assert text["autoscaling"]["min_replicas"] == text["autoscaling"]["max_replicas"] == 2
    assert text["routing"] == "prefix" and text["resources"] == {"num_cpus": 0.5}
