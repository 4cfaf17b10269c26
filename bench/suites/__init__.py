"""The committed benchmarks: `python -m bench suite
clip|whisper|stacks|llm|serve-llm|cache|observability|prefix-routing|slo|tenants|structured`
(results in
bench/results/<suite>/)."""

from __future__ import annotations

from pathlib import Path

from bench.rounds import DEFAULT_ROUNDS

NAMES = ("clip", "whisper", "stacks", "llm", "serve-llm", "cache", "observability",
         "prefix-routing", "slo", "tenants", "structured")
DEFAULT_DURATION_S = 60.0
# Measured seconds per configuration where a suite's default differs: the LLM suite measures
# eight configurations and starts two apps, and keeps to ~25 min a round on the 2-core machine.
# The slo suite's traces hold two burst periods of 60 s each. The tenants suite measures seven
# windows a round and keeps to ~9 min a round. The structured suite keeps the default: at
# 8 streams of 64 tokens each client then finishes several answers a window on either engine.
DEFAULT_DURATIONS_S = {"llm": 30.0, "slo": 120.0, "tenants": 30.0}


def run_suite(name: str, out: Path | None, duration_s: float | None, command: str,
              rounds: int = DEFAULT_ROUNDS) -> None:
    """Runs suite `name`: its configurations alternated over `rounds` rounds (bench/rounds.py;
    fewer than MIN_ROUNDS gives numbers but no verdict)."""
    from bench.suites import (
        cache,
        clip,
        llm,
        observability,
        prefix_routing,
        serve_llm,
        slo,
        stacks,
        structured,
        tenants,
        whisper,
    )

    suites = {"clip": clip.run, "whisper": whisper.run, "stacks": stacks.run, "llm": llm.run,
              "serve-llm": serve_llm.run, "cache": cache.run, "observability": observability.run,
              "prefix-routing": prefix_routing.run, "slo": slo.run, "tenants": tenants.run,
              "structured": structured.run}
    suites[name](command, out, duration_s or DEFAULT_DURATIONS_S.get(name, DEFAULT_DURATION_S),
                 rounds)
