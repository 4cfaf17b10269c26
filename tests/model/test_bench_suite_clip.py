"""The CLIP suite's arithmetic: halves averaged, the median ceiling for the goal, the best
beside it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.suites.clip import _pick, summarize


def report(images_per_s: float, batch: float = 8.0) -> dict:
    return {"metrics": {"overall": {"item_throughput": images_per_s,
                                    "e2e": {"p50": 1.0, "p95": 2.0, "p99": 3.0}}},
            "server": {"summary": {"batch_size": {"ImageEmbedder/embed_image": batch}}}}


def ceiling(two_thread: float) -> dict:
    return {"1_thread": {"images_per_s": 8.0}, "2_thread": {"images_per_s": two_thread},
            "2_processes": {"images_per_s": two_thread + 1},
            "1_thread_batch_1": {"images_per_s": 6.0}}


def test_goals_use_the_mean_of_the_halves_and_the_median_ceiling():
    runs = {"app-batching-on-1": report(13.0), "app-batching-off-1": report(9.0, 1.0),
            "app-batching-on-2": report(11.0), "app-batching-off-2": report(7.0, 1.0),
            "app-default-profile": report(10.0), "app-default-profile-c1": report(1.0),
            "app-default-profile-python-proxy": report(8.0),
            "app-default-profile-slo": report(6.5),
            "baseline-1-thread": report(5.0), "baseline-2-thread": report(6.0),
            "baseline-1-thread-c1": report(1.0)}
    measured = [ceiling(16.0), ceiling(12.0), ceiling(14.0)]
    results, markdown = summarize(SimpleNamespace(runs=runs, extra={}), _pick(measured, 1),
                                  _pick(measured, 2))
    ratios = results["ratios"]
    assert results["images_per_s"]["app-batching-on"] == 12.0
    assert ratios["batching_on_vs_off"] == pytest.approx(1.5)
    assert ratios["app_vs_two_thread_ceiling"] == pytest.approx(12.0 / 14.0)
    assert ratios["app_vs_two_thread_ceiling_best"] == pytest.approx(12.0 / 16.0)
    assert ratios["app_vs_two_core_ceiling"] == pytest.approx(12.0 / 15.0)
    assert ratios["clip_profile_haproxy_vs_default_profile"] == pytest.approx(1.2)
    assert ratios["default_profile_vs_best_baseline"] == pytest.approx(10.0 / 6.0)
    assert ratios["default_profile_slo_vs_best_baseline"] == pytest.approx(6.5 / 6.0)
    assert ratios["default_profile_haproxy_vs_python_proxy"] == pytest.approx(10.0 / 8.0)
    assert ratios["default_profile_vs_two_thread_ceiling"] == pytest.approx(10.0 / 14.0)
    assert ratios["default_profile_c1_p50_vs_baseline"] == pytest.approx(1.0)
    assert ratios["app_vs_two_process_ceiling"] == pytest.approx(12.0 / 15.0)
    assert ratios["default_profile_vs_two_core_ceiling"] == pytest.approx(10.0 / 15.0)
    # The goals are checked against the stricter two-core layout: 12 / 15 < 0.85 <= 12 / 14.
    assert results["goals_met"] == {"app_vs_two_core_ceiling": False,
                                    "batching_on_vs_off": True,
                                    "default_profile_vs_best_baseline": True,
                                    "default_profile_slo_vs_best_baseline": False,
                                    "default_profile_vs_two_core_ceiling": False,
                                    "default_profile_c1_p50_vs_baseline": True}
    assert "median of 3; best 16.00" in markdown


def test_one_ceiling_measurement_a_round_is_its_own_best():
    runs = {"app-batching-on-1": report(13.0), "app-batching-off-1": report(9.0, 1.0),
            "app-batching-on-2": report(13.0), "app-batching-off-2": report(9.0, 1.0),
            "app-default-profile": report(14.0), "app-default-profile-c1": report(1.0),
            "app-default-profile-python-proxy": report(8.0),
            "baseline-1-thread": report(5.0), "baseline-2-thread": report(6.0),
            "baseline-1-thread-c1": report(1.0)}
    results, markdown = summarize(SimpleNamespace(runs=runs, extra={}), ceiling(14.0))
    assert "app_vs_two_core_ceiling_best" not in results["ratios"]
    assert results["ratios"]["app_vs_two_core_ceiling"] == pytest.approx(13.0 / 15.0)
    assert results["goals_met"]["app_vs_two_core_ceiling"] is True
    assert results["goals_met"]["default_profile_vs_two_core_ceiling"] is True
    assert "(this round)" in markdown and "median of 3" not in markdown
