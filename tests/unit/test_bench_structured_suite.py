"""The structured suite's arithmetic: each engine's json run against its free run (output
tokens/s, TTFT p95), the 0.8x goal, the alternating order, an engine without both runs left
out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench.load import LoadSpec
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.suites.structured_summary import (
    GOALS,
    MODES,
    label,
    modes_of_round,
    summarize,
    workloads,
)

START = 100.0


def stream(ttft: float, tokens: int) -> RequestRecord:
    """A chat stream from START, its first token at `ttft`, its last at 4 s."""
    return RequestRecord("chat", START, path="/v1/chat/completions", stream=True,
                         token_times=[ttft, 4.0], end=4.0, status=200,
                         prompt_tokens=200, output_tokens=tokens)


def report(ttft: float, tokens: int) -> dict:
    return {"load": LoadSpec(concurrency=8, duration_s=4.0).describe(),
            "metrics": run_metrics([stream(ttft, tokens) for _ in range(8)], {"ttft": 2.0})}


def round_of(runs: dict[str, dict]) -> SimpleNamespace:
    return SimpleNamespace(runs=runs)


@pytest.mark.parametrize(("json_tokens", "met"), [(48, False), (56, True), (64, True)])
def test_json_against_free_per_engine_and_the_goal(json_tokens: int, met: bool) -> None:
    runs = {label("transformers", "free"): report(0.5, 64),
            label("transformers", "json"): report(1.0, json_tokens)}
    results, markdown = summarize(round_of(runs))
    row = results["engines"]["transformers"]
    assert row["json_vs_free_tokens_per_s"] == pytest.approx(json_tokens / 64)
    assert row["json_vs_free_ttft_p95"] == pytest.approx(2.0)
    assert row["goal_json_vs_free_tokens_per_s_met"] is met
    assert (json_tokens / 64 >= GOALS["json_vs_free_tokens_per_s"]) is met
    line = next(line for line in markdown.splitlines() if line.startswith("| transformers"))
    assert ("| met |" in line) is met and ("NOT met" in line) is not met


def test_an_engine_without_both_runs_is_left_out() -> None:
    runs = {label("transformers", "free"): report(0.5, 64),
            label("transformers", "json"): report(0.5, 64),
            label("vllm", "free"): report(0.5, 64)}
    results, markdown = summarize(round_of(runs))
    assert list(results["engines"]) == ["transformers"]
    assert "| vllm" not in markdown


def test_the_order_alternates_by_round() -> None:
    assert modes_of_round(1) == MODES and modes_of_round(2) == MODES[::-1]
    assert modes_of_round(3) == MODES


def test_the_two_workloads_differ_only_in_the_response_format() -> None:
    import random

    free, constrained = workloads()["free"], workloads()["json"]
    a, b = free.next_request(random.Random(7)), constrained.next_request(random.Random(7))
    assert "response_format" not in a.json
    schema = b.json.pop("response_format")["json_schema"]["schema"]
    assert a.json == b.json and schema["required"] == ["title", "story"]
