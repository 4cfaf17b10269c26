"""Rounds: the spread of a number across rounds, the verdict of a goal (met only when every
one of at least three rounds meets it), and their Markdown."""

from __future__ import annotations

from bench.rounds import (
    median_range,
    merge,
    render,
    spread,
    spread_lines,
    verdict,
    verdict_lines,
)


def test_spread_is_the_median_and_range_of_the_rounds_that_have_a_value():
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0,
                                       "rounds": [3.0, 1.0, 2.0]}
    assert spread([4.0, None, 2.0])["median"] == 3.0
    assert spread([None, None])["median"] is None


def test_a_goal_is_met_only_when_every_round_meets_it():
    assert verdict([True, True, True]) == {"met": True, "rounds_met": 3, "rounds": 3,
                                           "verdict": "met in 3/3 rounds"}
    missed = verdict([True, False, True])
    assert (missed["met"], missed["verdict"]) == (False, "not met: 2/3")
    assert verdict([True, None, True])["verdict"] == "not met: 2/3"  # a round without a value


def test_fewer_than_three_rounds_give_no_verdict():
    few = verdict([True, True])
    assert few["met"] is False
    assert few["verdict"] == "no verdict: 2 rounds, 3 needed"
    assert verdict([True], min_rounds=1)["verdict"] == "met in 1/1 rounds"


def test_merge_spreads_numbers_judges_booleans_and_keeps_settings():
    rounds = [{"ratios": {"a": 1.0}, "goals_met": {"a": True}, "profile": "cpu", "n": 16},
              {"ratios": {"a": 1.2}, "goals_met": {"a": False}, "profile": "cpu", "n": 16},
              {"ratios": {"a": 0.9}, "goals_met": {"a": True}, "profile": "cpu", "n": 16}]
    merged = merge(rounds)
    assert merged["ratios"]["a"] == {"median": 1.0, "min": 0.9, "max": 1.2,
                                     "rounds": [1.0, 1.2, 0.9]}
    assert merged["goals_met"]["a"]["verdict"] == "not met: 2/3"
    assert merged["profile"] == "cpu"
    assert merged["n"]["median"] == 16


def test_merge_counts_a_key_missing_in_a_round_as_no_value_there():
    merged = merge([{"x": 1.0, "ok": True}, {}, {"x": 3.0, "ok": True}])
    assert merged["x"]["rounds"] == [1.0, None, 3.0]
    assert merged["x"]["median"] == 2.0
    assert merged["ok"]["verdict"] == "not met: 2/3"


def test_merge_lists_what_differs_between_rounds():
    assert merge(["a", "b", "a"]) == {"rounds": ["a", "b", "a"]}


def test_render_shows_verdicts_and_the_spread_of_what_varies():
    merged = merge([{"ratios": {"speedup": 1.1}, "goals_met": {"speedup": True}, "clients": 16},
                    {"ratios": {"speedup": 1.3}, "goals_met": {"speedup": True}, "clients": 16},
                    {"ratios": {"speedup": 1.2}, "goals_met": {"speedup": False},
                     "clients": 16}])
    text = render(merged, 3)
    assert "## Across 3 rounds" in text
    assert "| goals_met.speedup | 2/3 | **not met: 2/3** |" in text
    assert "| ratios.speedup | 1.2 | 1.1-1.3 | 1.1 | 1.3 | 1.2 |" in text
    assert "clients" not in text  # the same in every round: a setting, not a measurement
    assert verdict_lines(merge([{"x": 1.0}] * 3)) == []
    assert spread_lines(merge([{"x": 1.0}] * 3), skip_constant=False)[2].startswith("| x |")


def test_median_range_reads_median_then_min_max():
    assert median_range(spread([10.0, 12.5, 11.0])) == "11 (10-12.5)"
    assert median_range(spread([None])) == "-"
