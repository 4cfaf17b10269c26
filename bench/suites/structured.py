"""Constrained decoding's cost: streaming chat at 8 clients with a response_format json_schema
against the same chat without one, on both text engines.

Each round, each engine's app started on its profile (`cpu-transformers`: the app's own
scheduler, the grammar a per-row token mask; `cpu`: vLLM, its guidance backend), both runs on
it: the `chat` workload of the llm suite (200-word prompts, max_tokens 48-80 drawn alike for
both runs, temperature 0, streamed with usage) free, and the same requests asking for an
extraction-like record of the story (structured_record.RECORD_SCHEMA, whose shortest valid
answer is longer than 80 tokens, so both runs' answers stop at max_tokens and their tokens/s
compare like for like). Which of the two goes first alternates from round to round, so a
drifting machine favours neither.
Reported per engine: output tokens/s, TTFT p95 and ITL p50 of each and json / free of all
three, and both runs' tokens per request. Goal (issue 24): json's output tokens/s at least
0.8x free's, judged only when the two answer lengths agree (structured_summary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite
from bench.suites.structured_record import RECORD_SCHEMA
from bench.suites.structured_summary import (
    CLIENTS,
    PROFILES,
    SLO,
    label,
    modes_of_round,
    summarize,
    workloads,
)

WARMUP_S = 10.0


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("structured", command, out, duration_s, rounds)
    loads = workloads()
    spec = LoadSpec(concurrency=CLIENTS, duration_s=duration_s, warmup_s=WARMUP_S)
    suite.extra.update(profiles=PROFILES, schema=RECORD_SCHEMA)

    def one_round(round_: Round) -> tuple[dict[str, Any], str]:
        for engine, profile in PROFILES.items():
            with running_app(profile) as app:
                for mode in modes_of_round(round_.number):
                    round_.run(label(engine, mode), app, loads[mode], spec, SLO)
        return summarize(round_)

    return suite.in_rounds(one_round)
