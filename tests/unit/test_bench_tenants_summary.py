"""The tenants suite's arithmetic on synthetic runs: the round's rates and limits from its
capacity, each goal on either side of its bound, the usage check, and the rounds merged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.rounds import merge
from bench.suites import tenants_summary as s


def tenant(name: str, **figures: Any) -> dict[str, Any]:
    base = {"name": name, "measured": 100, "admitted": 100, "ok": 100, "limits_refusals": 0,
            "refusals_with_retry_after": 0, "shed": 0, "shed_by_status": {},
            "no_response": 0, "accepted_requests_per_s": None, "accepted_tokens_per_s": None,
            "first_refusal_s": None,
            "retries": {"sent": 0, "admitted": 0, "ok": 0, "refused": 0},
            "told": {"requests": 0.0}, "ingress_replicas": {}}
    return {**base, **figures}


def report(name: str, goodput: float = 4.0, p95: float | None = 0.5, rate: float | None = 4.0,
           throughput: float = 4.0, **figures: Any) -> dict[str, Any]:
    return {"load": {"rate": rate},
            "metrics": {"overall": {"request_throughput": throughput,
                                    "requests": {"errors": figures.get("shed", 0)},
                                    "e2e": {"p95": p95} if p95 is not None else None,
                                    "route_slo": {"requests_per_s": goodput,
                                                  "fraction": 1.0}}},
            "tenant": tenant(name, **figures)}


PLAN = s.round_plan(20.0)


def test_the_round_plan_follows_the_capacity():
    assert PLAN.flood_rate == pytest.approx(60.0)  # 3x the capacity
    assert PLAN.flood_requests_per_minute == 900  # a quarter of it: 15/s
    assert PLAN.steady_rate == pytest.approx(3.0)
    assert PLAN.steady_requests_per_minute == 360  # twice its rate
    assert PLAN.batch_rate == pytest.approx(40.0)
    assert PLAN.retry_sample == 7  # half of what the bucket refills in a second
    assert s.round_plan(1000.0).retry_sample == s.RETRY_SAMPLE_MAX
    assert s.round_plan(0.1).retry_sample == 1
    with pytest.raises(ValueError):
        s.round_plan(0.0)


def isolation_runs(flooded_goodput: float, flooded_p95: float, refusals: int = 50,
                   with_retry_after: int = 50, retries: tuple[int, int] = (7, 7)):
    sent, admitted = retries
    return {s.run_key(s.ALONE, s.STEADY): report(s.STEADY, goodput=3.0, p95=1.0),
            s.run_key(s.FLOOD, s.STEADY): report(s.STEADY, goodput=flooded_goodput,
                                                 p95=flooded_p95),
            s.run_key(s.FLOOD, s.FLOODER): report(
                s.FLOODER, rate=60.0, limits_refusals=refusals,
                refusals_with_retry_after=with_retry_after, accepted_requests_per_s=15.1,
                retries={"sent": sent, "admitted": admitted, "ok": admitted, "refused": 0},
                ingress_replicas={"b": 30.0, "a": 10.0})}


def test_isolation_goals_hold_at_their_bounds():
    part = s.isolation(isolation_runs(2.85, 1.3), PLAN)
    assert part["goals_met"] == {"steady_goodput_at_least_0_95x_alone": True,
                                 "steady_p95_at_most_1_3x_alone": True,
                                 "flooder_refused_with_retry_after": True,
                                 "retried_after_retry_after_admitted": True}
    assert part["flooded_vs_alone"]["goodput_requests_per_s"] == pytest.approx(0.95)
    assert part["flooder"]["quota_per_s"] == pytest.approx(15.0)
    assert part["flooder"]["ingress_replicas"] == {"replica_0": 0.25, "replica_1": 0.75}


def test_isolation_goals_fail_past_their_bounds():
    met = s.isolation(isolation_runs(2.8, 1.31, refusals=50, with_retry_after=49,
                                     retries=(7, 6)), PLAN)["goals_met"]
    assert not any(met.values())


def test_a_flood_never_refused_or_never_retried_meets_no_goal():
    met = s.isolation(isolation_runs(3.0, 1.0, refusals=0, with_retry_after=0,
                                     retries=(0, 0)), PLAN)["goals_met"]
    assert not met["flooder_refused_with_retry_after"]
    assert not met["retried_after_retry_after_admitted"]


def test_isolation_needs_all_three_runs():
    runs = isolation_runs(3.0, 1.0)
    del runs[s.run_key(s.ALONE, s.STEADY)]
    assert s.isolation(runs, PLAN) is None


def priority_runs(loaded_p95: float, interactive_shed: int, batch_shed: int):
    return {s.run_key(s.INTERACTIVE_ALONE, s.INTERACTIVE): report(s.INTERACTIVE, p95=0.4),
            s.run_key(s.WITH_BATCH, s.INTERACTIVE): report(s.INTERACTIVE, p95=loaded_p95,
                                                           shed=interactive_shed),
            s.run_key(s.WITH_BATCH, s.BATCH): report(s.BATCH, rate=40.0, shed=batch_shed,
                                                     shed_by_status={"429": batch_shed})}


def test_priority_goals():
    assert all(s.priorities(priority_runs(0.6, 0, 12))["goals_met"].values())
    met = s.priorities(priority_runs(0.61, 1, 0))["goals_met"]
    assert met == {"interactive_p95_at_most_1_5x_unloaded": False,
                   "interactive_not_shed": False, "batch_absorbs_the_shedding": False}


def test_an_interactive_tenant_that_answered_nothing_under_load_fails_its_p95_goal():
    assert not s.priorities(priority_runs(None, 0, 5))["goals_met"][
        "interactive_p95_at_most_1_5x_unloaded"]


def limit_runs(requests_per_s: float, tokens_per_s: float, replicas: dict[str, float]):
    return {s.run_key(s.LIMITS, s.LIMITED): report(
                s.LIMITED, rate=20.0, accepted_requests_per_s=requests_per_s,
                first_refusal_s=0.05, limits_refusals=450, ingress_replicas=replicas),
            s.run_key(s.LIMITS, s.TOKENS): report(s.TOKENS, accepted_tokens_per_s=tokens_per_s)}


def test_limits_within_5_percent_on_both_ingress_replicas():
    part = s.limits(limit_runs(5.25, 47.5, {"r1": 70.0, "r2": 80.0}), PLAN)
    assert all(part["goals_met"].values())
    assert part["requests"]["accepted_vs_configured"] == pytest.approx(1.05)
    assert part["tokens"]["configured_per_s"] == pytest.approx(50.0)


def test_limits_past_5_percent_or_one_replica_fail():
    met = s.limits(limit_runs(5.3, 52.6, {"r1": 150.0, "r2": 0.0}), PLAN)["goals_met"]
    assert met == {"requests_rate_within_5pct": False, "tokens_rate_within_5pct": False,
                   "both_ingress_replicas_served": False}


def day(requests: float, **counts: float) -> dict[str, Any]:
    return {"start": "2026-12-07T00:00:00Z", "requests": requests, "model_seconds": {},
            **counts}


def test_usage_totals_add_every_day_and_the_round_is_after_less_before():
    report_ = {"tenants": {"a": {"hours": [day(99)], "days": [day(10, images=2),
                                                             day(5, prompt_tokens=7)]}}}
    totals = s.usage_totals(report_)
    assert totals["a"]["requests"] == 15 and totals["a"]["images"] == 2
    assert totals["a"]["prompt_tokens"] == 7 and totals["a"]["audio_seconds"] == 0
    delta = s.usage_delta({"a": {"requests": 4.0}}, totals)
    assert delta["a"]["requests"] == 11 and delta["a"]["images"] == 2


def test_usage_is_checked_count_by_count_within_1_percent_the_admin_left_out():
    server = {"a": {"requests": 1010.0, "prompt_tokens": 0.0, "audio_seconds": 9.9},
              "admin": {"requests": 7.0}}
    told = {"a": {"requests": 1000.0, "audio_seconds": 10.0, "no_response": 2.0}}
    check = s.usage_check(server, told)
    assert set(check["tenants"]) == {"a"}
    counts = check["tenants"]["a"]
    assert s.count_within(counts["requests"]) and s.count_within(counts["audio_seconds"])
    assert s.count_within(counts["prompt_tokens"]) and counts["no_response"] == 2.0
    assert check["goals_met"] == {"usage_within_1pct": True}
    server["a"]["requests"] = 1011.0
    assert not s.usage_check(server, told)["goals_met"]["usage_within_1pct"]


def test_a_count_the_clients_were_never_told_must_be_zero_in_the_app():
    check = s.usage_check({"a": {"requests": 3.0, "images": 1.0}},
                          {"a": {"requests": 3.0}})
    assert not s.count_within(check["tenants"]["a"]["images"])


def test_a_tenant_the_app_never_counted_fails_the_check():
    assert not s.usage_check({}, {"a": {"requests": 3.0}})["goals_met"]["usage_within_1pct"]


def test_what_the_clients_were_told_adds_the_runs_and_the_suites_own_requests():
    runs = {"x-a": report("a", told={"requests": 3.0, "images": 1.0}),
            "y-a": report("a", told={"requests": 2.0}),
            "y-b": report("b", told={"requests": 1.0})}
    told = s.told_by_tenant(runs, {"a": {"requests": 10.0}})
    assert told == {"a": {"requests": 15.0, "images": 1.0}, "b": {"requests": 1.0}}


@dataclass
class FakeRound:
    runs: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)


def a_round(capacity: float = 20.0) -> FakeRound:
    runs = {s.run_key(s.capacity_label(16), s.CAPACITY): report(s.CAPACITY, throughput=18.0),
            s.run_key(s.capacity_label(32), s.CAPACITY): report(s.CAPACITY,
                                                                throughput=capacity),
            **isolation_runs(2.9, 1.2), **priority_runs(0.5, 0, 10),
            **limit_runs(5.0, 50.0, {"r1": 1.0, "r2": 1.0})}
    for key in runs:
        runs[key]["tenant"]["told"] = {"requests": 1.0}
    usage = {"before": {}, "after": {name: {"requests": float(n)} for name, n in
                                     {"capacity": 2, "team-a": 1, "team-b": 2,
                                      "interactive": 2, "batch": 1, "limited-requests": 1,
                                      "limited-tokens": 1}.items()}}
    return FakeRound(runs, {"plan": s.round_plan(capacity).as_dict(), "usage_server": usage,
                            "out_of_band": {}})


def test_a_round_is_summarized_with_every_goal_and_a_markdown_report():
    results, markdown = s.summarize(a_round())
    assert results["capacity"]["requests_per_s"] == 20.0
    assert results["capacity"]["levels"] == {"c16": 18.0, "c32": 20.0}
    assert results["goals_met"] == {
        "steady_goodput_at_least_0_95x_alone": True, "steady_p95_at_most_1_3x_alone": True,
        "flooder_refused_with_retry_after": True, "retried_after_retry_after_admitted": True,
        "interactive_p95_at_most_1_5x_unloaded": True, "interactive_not_shed": True,
        "batch_absorbs_the_shedding": True, "requests_rate_within_5pct": True,
        "tokens_rate_within_5pct": True, "both_ingress_replicas_served": True,
        "usage_within_1pct": True}
    for text in ("Isolation", "Priorities", "Limits across", "Usage", "| usage_within_1pct |"):
        assert text in markdown
    assert "goals_met" not in results["isolation"]  # each goal once, in results["goals_met"]


def test_rounds_merge_into_verdicts_and_a_headline():
    first, _ = s.summarize(a_round(20.0))
    failing = a_round(22.0)
    failing.runs[s.run_key(s.WITH_BATCH, s.INTERACTIVE)]["tenant"]["shed"] = 3
    second, _ = s.summarize(failing)
    third, _ = s.summarize(a_round(21.0))
    merged = merge([first, second, third])
    assert merged["goals_met"]["interactive_not_shed"]["verdict"] == "not met: 2/3"
    assert merged["goals_met"]["usage_within_1pct"]["verdict"] == "met in 3/3 rounds"
    assert merged["capacity"]["requests_per_s"]["median"] == 21.0
    headline = s.across_rounds(merged, [1, 2, 3])
    assert "interactive shed" in headline and "team-b e2e p95 s, alone" in headline
