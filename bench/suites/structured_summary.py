"""The structured suite's plan and arithmetic (bench/suites/structured.py runs it): its two
workloads, which goes first in a round, and per engine json against free with the goal."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.suites.figures import chat_row, fmt
from bench.suites.goals import ratio
from bench.workloads import Workload, build_workload

PROFILES = {"transformers": "cpu-transformers", "vllm": "cpu"}
MODES = ("free", "json")
CLIENTS = 8
SLO = {"ttft": 2.0}
GOALS = {"json_vs_free_tokens_per_s": 0.8}
STORY_SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                                 "story": {"type": "string"}},
                "required": ["title", "story"], "additionalProperties": False}


def workloads() -> dict[str, Workload]:
    """The llm suite's streaming chat (greedy), free and asking for STORY_SCHEMA."""
    free = replace(build_workload("chat", {"prompt_len": "200", "output_len": "64",
                                           "stream": True, "seed": 0}), temperature=0.0)
    constrained = replace(free, name="chat-json", response_format={
        "type": "json_schema", "json_schema": {"name": "story", "schema": STORY_SCHEMA}})
    return {"free": free, "json": constrained}


def label(engine: str, mode: str) -> str:
    return f"{engine}-{mode}-c{CLIENTS}"


def modes_of_round(number: int) -> tuple[str, ...]:
    """free first in odd rounds, json first in even ones."""
    return MODES if number % 2 else MODES[::-1]


def summarize(round_: Any) -> tuple[dict[str, Any], str]:
    """Per engine with both runs: each run's chat figures, json / free, the goal."""
    engines: dict[str, Any] = {}
    for engine in PROFILES:
        reports = {mode: round_.runs.get(label(engine, mode)) for mode in MODES}
        if None in reports.values():
            continue
        free, constrained = chat_row(reports["free"]), chat_row(reports["json"])
        tokens = ratio(constrained["output_tokens_per_s"], free["output_tokens_per_s"])
        engines[engine] = {
            "free": free, "json": constrained, "json_vs_free_tokens_per_s": tokens,
            "json_vs_free_ttft_p95": ratio(constrained["ttft_p95"], free["ttft_p95"]),
            "goal_json_vs_free_tokens_per_s_met":
                tokens is not None and tokens >= GOALS["json_vs_free_tokens_per_s"]}
    results = {"clients": CLIENTS, "slo": SLO, "goals": GOALS, "engines": engines}
    return results, "\n".join(_lines(engines)) + "\n"


def _lines(engines: dict[str, Any]) -> list[str]:
    goal = GOALS["json_vs_free_tokens_per_s"]
    lines = [f"Streaming chat at {CLIENTS} clients (~200 prompt tokens, 64 output tokens, "
             "temperature 0), free and with a response_format json_schema:", "",
             "| engine | free out tok/s | json out tok/s | json / free | "
             f">= {goal} | free TTFT p95 s | json TTFT p95 s | json / free | errors |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for engine, row in engines.items():
        free, constrained = row["free"], row["json"]
        met = "met" if row["goal_json_vs_free_tokens_per_s_met"] else "NOT met"
        lines.append(
            f"| {engine} | {free['output_tokens_per_s']:.1f} | "
            f"{constrained['output_tokens_per_s']:.1f} | "
            f"{fmt(row['json_vs_free_tokens_per_s'])} | {met} | {fmt(free['ttft_p95'])} | "
            f"{fmt(constrained['ttft_p95'])} | {fmt(row['json_vs_free_ttft_p95'])} | "
            f"{free['errors'] + constrained['errors']} |")
    return lines
