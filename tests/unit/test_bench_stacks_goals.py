"""The mixed suite's goals against the peer stack, checked every round: goodput at least 2x,
every route's e2e p95 at or below, throughput at least 1.5x; and the comparisons they use."""

from __future__ import annotations

from bench.rounds import merge
from bench.suites.goals import at_least, at_most, ratio
from bench.suites.stacks_goals import goal_rows, goals_met


def figures(goodput: float | None, req_s: float, chat_p95: float | None,
            transcription_p95: float | None = 2.0) -> dict:
    """The fields of a stack's `stack_figures` the goals read."""
    return {"goodput_requests_per_s": goodput, "request_throughput": req_s,
            "route_e2e_p95": {"chat": chat_p95, "transcription": transcription_p95}}


def test_at_least_needs_the_factor_and_something_served():
    assert at_least(3.0, 1.5, 2.0) and not at_least(2.9, 1.5, 2.0)
    assert not at_least(0.0, 0.0, 2.0)  # both served nothing
    assert at_least(0.1, 0.0, 2.0)
    assert not at_least(None, 1.0, 2.0) and not at_least(1.0, None, 2.0)


def test_at_most_is_beaten_by_any_latency_where_the_other_served_none():
    assert at_most(2.0, 2.0) and not at_most(2.1, 2.0)
    assert at_most(5.0, None) and not at_most(None, 5.0)


def test_ratio_has_no_value_without_a_divisor():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(3.0, 0.0) is None and ratio(None, 2.0) is None


def test_every_goal_met_when_the_app_leads_by_enough():
    met = goals_met(figures(4.0, 3.0, 3.0), figures(2.0, 2.0, 4.0))
    assert met == {"goodput_at_least_2x_peers": True,
                   "every_route_e2e_p95_at_most_peers": True,
                   "throughput_at_least_1_5x_peers": True,
                   "route_e2e_p95_at_most_peers": {"chat": True, "transcription": True}}


def test_one_slower_route_fails_the_p95_goal_and_short_leads_fail_theirs():
    met = goals_met(figures(3.9, 2.9, 4.5), figures(2.0, 2.0, 4.0))
    assert met["route_e2e_p95_at_most_peers"] == {"chat": False, "transcription": True}
    assert not met["every_route_e2e_p95_at_most_peers"]
    assert not met["goodput_at_least_2x_peers"]
    assert not met["throughput_at_least_1_5x_peers"]


def test_a_route_the_app_answered_none_of_misses_and_goodput_unknown_misses():
    met = goals_met(figures(None, 3.0, None), figures(1.0, 1.0, 4.0))
    assert met["route_e2e_p95_at_most_peers"]["chat"] is False
    assert not met["goodput_at_least_2x_peers"]


def test_across_rounds_each_goal_needs_every_round():
    peers = figures(2.0, 2.0, 4.0)
    rounds = [goals_met(figures(4.0, 3.0, p95), peers) for p95 in (3.0, 5.0, 3.5)]
    merged = merge(rounds)
    assert merged["every_route_e2e_p95_at_most_peers"]["verdict"] == "not met: 2/3"
    assert merged["route_e2e_p95_at_most_peers"]["transcription"]["verdict"] == (
        "met in 3/3 rounds")
    assert merged["goodput_at_least_2x_peers"]["verdict"] == "met in 3/3 rounds"


def test_the_goal_table_shows_both_stacks_and_the_rounds_verdict():
    app, peers = figures(4.0, 2.5, 4.5), figures(2.0, 2.0, 4.0)
    lines = goal_rows(app, peers, goals_met(app, peers), 16)
    assert lines[0] == "| goal (app against peers, 16 clients) | app | peers | this round |"
    assert "| within-SLO req/s >= 2x | 4 | 2 | met |" in lines
    assert "| req/s >= 1.5x | 2.5 | 2 | NOT met |" in lines
    assert "| chat e2e p95 s <= peers' | 4.5 | 4 | NOT met |" in lines
    assert "| transcription e2e p95 s <= peers' | 2 | 2 | met |" in lines


def test_the_goal_table_names_the_app_stack_it_judges():
    app, peers = figures(4.0, 2.5, 4.5), figures(2.0, 2.0, 4.0)
    lines = goal_rows(app, peers, goals_met(app, peers), 16, "app-slo")
    assert lines[0] == ("| goal (app-slo against peers, 16 clients) | app-slo | peers | "
                        "this round |")
