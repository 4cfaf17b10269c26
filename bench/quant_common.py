"""What the quantization benchmarks share: a Markdown table, and where results are written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def best_interleaved(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """The best of `rounds` runs of each measure (a rate: higher is better), run in turn
    (A B C A B C ...), so that a burst of load from other processes hits every variant."""
    best = dict.fromkeys(measures, 0.0)
    for _ in range(rounds):
        for name, measure in measures.items():
            best[name] = max(best[name], measure())
    return best


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def markdown_table(columns: list[str], rows: list[dict]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_results(name: str, title: str, columns: list[str], rows: list[dict],
                  notes: list[str], load_before: str) -> str:
    """Prints and saves bench/results/<name>.md and .json; returns the Markdown."""
    command = f"python -m bench.{name} {' '.join(sys.argv[1:])}".strip()
    text = "\n".join([f"# {title}", "", f"Command: `{command}`  ",
                      f"Load before: `{load_before}`  ", f"Load after: `{uptime()}`", "",
                      markdown_table(columns, rows), "", *notes]) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"command": command, "load_before": load_before, "rows": rows}, indent=2) + "\n")
    print(text)
    return text
