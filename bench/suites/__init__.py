"""The committed benchmarks: `python -m bench suite clip|whisper|stacks` (results in
bench/results/<suite>/)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DURATION_S = 60.0


def run_suite(name: str, out: Path | None, duration_s: float | None, command: str) -> None:
    from bench.suites import clip, stacks, whisper

    suites = {"clip": clip.run, "whisper": whisper.run, "stacks": stacks.run}
    suites[name](command, out, duration_s or DEFAULT_DURATION_S)
