"""The structured suite's plan and arithmetic (bench/suites/structured.py runs it): its two
workloads, which goes first in a round, and per engine json against free with the goal.

The goal compares output tokens/s, which is only the constraint's cost when both
configurations produce answers of the same length: a shorter answer pays its prefill and TTFT
over fewer tokens. So each engine's row also holds the tokens per request of both and the
ITL p50 ratio (the per-token cost alone), and the goal is withheld, with the reason, when the
lengths differ by more than LENGTH_TOLERANCE."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.suites.figures import chat_row, fmt
from bench.suites.goals import ratio
from bench.suites.structured_record import MAX_OUTPUT_TOKENS, RECORD_SCHEMA
from bench.workloads import Workload, build_workload

PROFILES = {"transformers": "cpu-transformers", "vllm": "cpu"}
MODES = ("free", "json")
CLIENTS = 8
PROMPT_WORDS = 200
# max_tokens drawn per request, the same draws in both runs (same seeds): with one length for
# all, 8 closed-loop clients fall into lockstep waves whose 8 prefills run at once, and whether
# a run fell into waves moved its TTFT and tokens/s more than the constraint did.
OUTPUT_TOKENS = f"uniform:48,{MAX_OUTPUT_TOKENS}"
SLO = {"ttft": 2.0}
GOALS = {"json_vs_free_tokens_per_s": 0.8}
LENGTH_TOLERANCE = 0.10
# Fewer measured requests per client than this and a window's edges weigh on its tokens/s.
FEW_REQUESTS_PER_CLIENT = 3


def workloads() -> dict[str, Workload]:
    """The llm suite's streaming chat (greedy), free and asking for RECORD_SCHEMA."""
    free = replace(build_workload("chat", {"prompt_len": str(PROMPT_WORDS),
                                           "output_len": OUTPUT_TOKENS,
                                           "stream": True, "seed": 0}), temperature=0.0)
    constrained = replace(free, name="chat-json", response_format={
        "type": "json_schema", "json_schema": {"name": "story_record", "schema": RECORD_SCHEMA}})
    return {"free": free, "json": constrained}


def label(engine: str, mode: str) -> str:
    return f"{engine}-{mode}-c{CLIENTS}"


def modes_of_round(number: int) -> tuple[str, ...]:
    """free first in odd rounds, json first in even ones."""
    return MODES if number % 2 else MODES[::-1]


def length_mismatch(free_tokens: float | None, json_tokens: float | None) -> str | None:
    """Why json's tokens/s cannot stand for the constraint's cost: its answers' mean length
    is more than LENGTH_TOLERANCE away from free's (or either is unknown). None when alike."""
    if not free_tokens or not json_tokens:
        return "no output tokens measured in one of the two runs"
    off = json_tokens / free_tokens - 1
    if abs(off) <= LENGTH_TOLERANCE:
        return None
    return (f"json answers averaged {json_tokens:.1f} output tokens against free's "
            f"{free_tokens:.1f} ({off:+.0%}, more than {LENGTH_TOLERANCE:.0%} apart): tokens/s "
            "would compare answer lengths, not the constraint's cost")


def compare(free: dict[str, Any], constrained: dict[str, Any]) -> dict[str, Any]:
    """One engine's json row against its free row: the ratios, like for like, the goal."""
    tokens = ratio(constrained["output_tokens_per_s"], free["output_tokens_per_s"])
    withheld = length_mismatch(free["output_tokens_per_request"],
                               constrained["output_tokens_per_request"])
    return {
        "free": free, "json": constrained, "json_vs_free_tokens_per_s": tokens,
        "json_vs_free_ttft_p95": ratio(constrained["ttft_p95"], free["ttft_p95"]),
        "json_vs_free_itl_p50": ratio(constrained["itl_p50"], free["itl_p50"]),
        "json_vs_free_output_tokens_per_request": ratio(
            constrained["output_tokens_per_request"], free["output_tokens_per_request"]),
        "same_output_length_met": withheld is None,
        "goal_withheld_because": withheld,
        "goal_json_vs_free_tokens_per_s_met": withheld is None and tokens is not None
        and tokens >= GOALS["json_vs_free_tokens_per_s"]}


def summarize(round_: Any) -> tuple[dict[str, Any], str]:
    """Per engine with both runs: each run's chat figures, json / free, the goal."""
    engines: dict[str, Any] = {}
    for engine in PROFILES:
        reports = {mode: round_.runs.get(label(engine, mode)) for mode in MODES}
        if None in reports.values():
            continue
        engines[engine] = compare(chat_row(reports["free"]), chat_row(reports["json"]))
    results = {"clients": CLIENTS, "slo": SLO, "goals": GOALS,
               "length_tolerance": LENGTH_TOLERANCE, "engines": engines}
    return results, "\n".join(_lines(engines)) + "\n"


def _lines(engines: dict[str, Any]) -> list[str]:
    goal = GOALS["json_vs_free_tokens_per_s"]
    lines = [f"Streaming chat at {CLIENTS} clients (~{PROMPT_WORDS} prompt tokens, "
             f"max_tokens {OUTPUT_TOKENS} drawn alike for both, temperature 0), free and with a "
             "response_format json_schema whose shortest valid answer is longer than max_tokens "
             "(json / free "
             "of each figure; the goal is judged only when both answer lengths agree within "
             f"{LENGTH_TOLERANCE:.0%}):", "",
             f"| engine | out tok/s json / free | >= {goal} | TTFT p95 json / free | "
             "ITL p50 json / free | free tok/req | json tok/req | requests free / json | "
             "errors |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_ratio_line(engine, row) for engine, row in engines.items()]
    lines += ["", "| engine | free out tok/s | json out tok/s | free TTFT p95 s | "
              "json TTFT p95 s | free ITL p50 s | json ITL p50 s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_figures_line(engine, row) for engine, row in engines.items()]
    notes = [*_withheld_notes(engines), *_few_requests_notes(engines)]
    return lines + ([""] + notes if notes else [])


def _ratio_line(engine: str, row: dict[str, Any]) -> str:
    free, constrained = row["free"], row["json"]
    if row["goal_withheld_because"]:
        met = "withheld"
    else:
        met = "met" if row["goal_json_vs_free_tokens_per_s_met"] else "NOT met"
    return (f"| {engine} | {fmt(row['json_vs_free_tokens_per_s'])} | {met} | "
            f"{fmt(row['json_vs_free_ttft_p95'])} | {fmt(row['json_vs_free_itl_p50'])} | "
            f"{fmt(free['output_tokens_per_request'], 1)} | "
            f"{fmt(constrained['output_tokens_per_request'], 1)} | "
            f"{free['requests']} / {constrained['requests']} | "
            f"{free['errors'] + constrained['errors']} |")


def _figures_line(engine: str, row: dict[str, Any]) -> str:
    free, constrained = row["free"], row["json"]
    return (f"| {engine} | {free['output_tokens_per_s']:.1f} | "
            f"{constrained['output_tokens_per_s']:.1f} | {fmt(free['ttft_p95'])} | "
            f"{fmt(constrained['ttft_p95'])} | {fmt(free['itl_p50'], 4)} | "
            f"{fmt(constrained['itl_p50'], 4)} |")


def _withheld_notes(engines: dict[str, Any]) -> list[str]:
    return [f"- {engine}: goal withheld: {row['goal_withheld_because']}."
            for engine, row in engines.items() if row["goal_withheld_because"]]


def _few_requests_notes(engines: dict[str, Any]) -> list[str]:
    notes = []
    for engine, row in engines.items():
        for mode in MODES:
            per_client = row[mode]["requests"] / CLIENTS
            if per_client < FEW_REQUESTS_PER_CLIENT:
                notes.append(f"- {engine} {mode}: {per_client:.1f} measured requests per "
                             f"client, fewer than {FEW_REQUESTS_PER_CLIENT}: the window's "
                             "edges weigh on its tokens/s; a longer --duration evens them.")
    return notes
