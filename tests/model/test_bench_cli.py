"""The bench command line: its load options and its refusal of a dirty tree (bench.cli imports
Ray)."""

from __future__ import annotations

import pytest


def test_cli_load_defaults_closed_loop_of_8_and_no_cap_for_open_loop():
    from bench.cli import load_spec, parser

    def spec(*argv):
        return load_spec(parser().parse_args(["run", "--url", "http://x", *argv]))

    assert (spec().mode, spec().concurrency, spec().duration_s) == ("closed", 8, 30.0)
    assert (spec("--rate", "2").mode, spec("--rate", "2").concurrency) == ("open", 0)
    assert spec("--rate", "2", "--concurrency", "4").concurrency == 4
    counted = spec("--requests", "100", "--warmup", "0")
    assert (counted.duration_s, counted.requests, counted.warmup_s) == (None, 100, 0.0)
    assert spec("--slo", "e2e=2s").duration_s == 30.0


def test_results_from_a_dirty_tree_are_refused_unless_allowed(monkeypatch, tmp_path):
    from bench import cli

    monkeypatch.setattr(cli, "git_commit", lambda: "abc1234-dirty")
    with pytest.raises(SystemExit, match="uncommitted changes"):
        cli.refuse_dirty_results(cli.parser().parse_args(["fuzz", "--profile", "cpu"]))
    for allowed in (["fuzz", "--profile", "cpu", "--allow-dirty"],
                    ["soak", "--profile", "cpu", "--out", str(tmp_path)]):
        cli.refuse_dirty_results(cli.parser().parse_args(allowed))
    monkeypatch.setattr(cli, "git_commit", lambda: "abc1234")
    cli.refuse_dirty_results(cli.parser().parse_args(["suite", "clip"]))


def test_suites_run_three_rounds_unless_told_otherwise():
    from bench import cli

    assert cli.parser().parse_args(["suite", "stacks"]).rounds == 3
    assert cli.parser().parse_args(["suite", "clip", "--rounds", "5"]).rounds == 5
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["suite", "clip", "--rounds", "0"])
