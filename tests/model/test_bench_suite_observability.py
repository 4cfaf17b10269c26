"""The observability suite's arithmetic: on against off from the mean of alternating halves,
the 3% goals, and whether the switch took (Server-Timing on every answer on, none off)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.suites.observability import OFF, ON, label, summarize


def report(images_per_s: float, p50: float, p95: float, timing_share: float | None) -> dict:
    return {"metrics": {"overall": {"item_throughput": images_per_s,
                                    "requests": {"total": 10, "ok": 10, "errors": 0},
                                    "e2e": {"p50": p50, "p95": p95}}},
            "response_headers": {"server_timing_share": timing_share}}


def test_on_against_off_from_the_mean_of_the_halves():
    runs = {label("on", 1): report(20.0, 1.0, 2.0, 1.0),
            label("off", 1): report(21.0, 1.0, 1.9, 0.0),
            label("on", 2): report(22.0, 1.1, 2.0, 1.0),
            label("off", 2): report(21.0, 1.0, 2.1, 0.0)}
    results, markdown = summarize(SimpleNamespace(runs=runs))
    ratios = results["ratios"]
    assert results["means"]["on"]["images_per_s"] == 21.0
    assert ratios["throughput_on_vs_off"] == pytest.approx(1.0)
    assert ratios["e2e_p50_on_vs_off"] == pytest.approx(1.05)
    assert ratios["e2e_p95_on_vs_off"] == pytest.approx(1.0)
    assert results["goals_met"] == {"throughput_on_vs_off": True, "e2e_p50_on_vs_off": False,
                                    "e2e_p95_on_vs_off": True}
    assert all(results["switch_took"].values())
    assert "| e2e_p50_on_vs_off | 1.050 | <= 1.03: NOT met |" in markdown
    assert "did NOT take" not in markdown


def test_a_switch_that_did_not_take_is_flagged():
    runs = {label("on", 1): report(20.0, 1.0, 2.0, 0.5),
            label("off", 1): report(18.0, 1.0, 2.0, 1.0)}
    results, markdown = summarize(SimpleNamespace(runs=runs))
    assert results["switch_took"] == {label("on", 1): False, label("off", 1): False}
    assert results["ratios"]["throughput_on_vs_off"] == pytest.approx(20 / 18)
    assert markdown.count("switch did NOT take") == 2


def test_on_and_off_name_the_leads_config_fields():
    assert ON["observability"] == {"server_timing": True, "metrics": True,
                                   "tracing": {"enabled": True}}
    assert not any(OFF["observability"][k] for k in ("server_timing", "metrics"))
    assert OFF["observability"]["tracing"] == {"enabled": False}
