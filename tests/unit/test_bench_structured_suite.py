"""The structured suite's arithmetic: each engine's json run against its free run (output
tokens/s, TTFT p95, ITL p50), the 0.8x goal judged only when both runs' answers have the same
length, the alternating order, an engine without both runs left out, and a schema whose
shortest valid answer outlasts max_tokens."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import jsonschema
import pytest

from bench.load import LoadSpec
from bench.metrics import run_metrics
from bench.records import RequestRecord
from bench.suites.structured_record import (
    MAX_OUTPUT_TOKENS,
    RECORD_SCHEMA,
    SHORTEST_ANSWER_CHARS,
)
from bench.suites.structured_summary import (
    CLIENTS,
    MODES,
    label,
    length_mismatch,
    modes_of_round,
    summarize,
    workloads,
)

START = 100.0


def stream(ttft: float, tokens: int, end: float, start: float = START) -> RequestRecord:
    """A chat stream from `start`, its first token at `ttft`, one token every 0.1 s after it
    until `end` (seconds after `start`)."""
    times = [ttft + 0.1 * i for i in range(int((end - ttft) / 0.1) + 1)]
    return RequestRecord("chat", start, path="/v1/chat/completions", stream=True,
                         token_times=times, end=end, status=200,
                         prompt_tokens=200, output_tokens=tokens)


def report(ttft: float, tokens: int, end: float = 4.0, waves: int = 3) -> dict:
    """`waves` back-to-back requests from each of CLIENTS clients."""
    records = [stream(ttft, tokens, end, START + wave * end)
               for wave in range(waves) for _ in range(CLIENTS)]
    return {"load": LoadSpec(concurrency=CLIENTS, duration_s=waves * end).describe(),
            "metrics": run_metrics(records, {"ttft": 2.0})}


def engine_row(free: dict, constrained: dict, engine: str = "transformers") -> tuple[dict, str]:
    runs = {label(engine, "free"): free, label(engine, "json"): constrained}
    results, markdown = summarize(SimpleNamespace(runs=runs))
    return results["engines"][engine], markdown


def line_of(markdown: str, engine: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {engine} |"))


@pytest.mark.parametrize(("json_end", "met"), [(5.5, False), (4.8, True), (4.0, True)])
def test_the_goal_on_answers_of_equal_length(json_end: float, met: bool) -> None:
    row, markdown = engine_row(report(0.5, 64), report(1.0, 64, end=json_end))
    assert row["json_vs_free_tokens_per_s"] == pytest.approx(4.0 / json_end)
    assert row["json_vs_free_ttft_p95"] == pytest.approx(2.0)
    assert row["json_vs_free_output_tokens_per_request"] == pytest.approx(1.0)
    assert row["same_output_length_met"] is True and row["goal_withheld_because"] is None
    assert row["goal_json_vs_free_tokens_per_s_met"] is met
    assert ("| met |" in line_of(markdown, "transformers")) is met
    assert ("NOT met" in line_of(markdown, "transformers")) is not met


def test_the_itl_ratio_is_reported_beside_the_others() -> None:
    free, constrained = report(0.5, 64, end=4.0), report(0.5, 64, end=4.0)
    constrained["metrics"] = run_metrics(
        [RequestRecord("chat", START, path="/v1/chat/completions", stream=True,
                       token_times=[0.5 + 0.15 * i for i in range(20)], end=4.0, status=200,
                       prompt_tokens=200, output_tokens=64) for _ in range(24)], {"ttft": 2.0})
    row, _ = engine_row(free, constrained)
    assert row["json_vs_free_itl_p50"] == pytest.approx(1.5)


@pytest.mark.parametrize("json_tokens", [32, 57, 71])
def test_answers_of_different_lengths_withhold_the_goal(json_tokens: int) -> None:
    # Even a json run with more tokens/s than free's is no verdict when its answers differ.
    row, markdown = engine_row(report(0.5, 64), report(0.5, json_tokens, end=2.0))
    assert row["same_output_length_met"] is False
    assert row["goal_json_vs_free_tokens_per_s_met"] is False
    assert f"{json_tokens:.1f} output tokens" in row["goal_withheld_because"]
    assert "| withheld |" in line_of(markdown, "transformers")
    assert "- transformers: goal withheld: json answers averaged" in markdown


@pytest.mark.parametrize(("free", "constrained", "alike"),
                         [(64, 64, True), (64, 58, True), (64, 70, True), (64, 57, False),
                          (64, 71, False), (64, None, False), (None, 64, False)])
def test_lengths_within_ten_percent_are_alike(free, constrained, alike: bool) -> None:
    assert (length_mismatch(free, constrained) is None) is alike


def test_a_short_window_is_flagged() -> None:
    _, markdown = engine_row(report(0.5, 64, waves=2), report(0.5, 64, waves=3))
    assert "transformers free: 2.0 measured requests per client" in markdown
    assert "transformers json:" not in markdown


def test_an_engine_without_both_runs_is_left_out() -> None:
    runs = {label("transformers", "free"): report(0.5, 64),
            label("transformers", "json"): report(0.5, 64),
            label("vllm", "free"): report(0.5, 64)}
    results, markdown = summarize(SimpleNamespace(runs=runs))
    assert list(results["engines"]) == ["transformers"]
    assert "| vllm" not in markdown


def test_the_order_alternates_by_round() -> None:
    assert modes_of_round(1) == MODES and modes_of_round(2) == MODES[::-1]
    assert modes_of_round(3) == MODES


def test_the_two_workloads_differ_only_in_the_response_format() -> None:
    free, constrained = workloads()["free"], workloads()["json"]
    free_rng, json_rng = random.Random(7), random.Random(7)
    lengths = set()
    for _ in range(20):
        a, b = free.next_request(free_rng), constrained.next_request(json_rng)
        assert "response_format" not in a.json
        assert b.json.pop("response_format")["json_schema"]["schema"] == RECORD_SCHEMA
        assert a.json == b.json
        lengths.add(a.json["max_tokens"])
    # Lengths that vary keep the clients out of lockstep, alike in both runs.
    assert len(lengths) > 1 and max(lengths) <= MAX_OUTPUT_TOKENS


def shortest_record(story_chars: int = 800) -> dict:
    return {"title": "t" * 20, "characters": ["abc"] * 3, "setting": "s" * 20,
            "story": "w" * story_chars}


def test_the_shortest_valid_record_outlasts_max_tokens() -> None:
    jsonschema.validate(shortest_record(), RECORD_SCHEMA)
    assert len(json.dumps(shortest_record(), separators=(",", ":"))) >= SHORTEST_ANSWER_CHARS
    # 8 characters a token is twice what English text averages in a BPE vocabulary.
    assert SHORTEST_ANSWER_CHARS >= 8 * MAX_OUTPUT_TOKENS
    for too_short in (shortest_record(799), {**shortest_record(), "characters": ["abc"] * 2},
                      {key: v for key, v in shortest_record().items() if key != "story"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(too_short, RECORD_SCHEMA)
