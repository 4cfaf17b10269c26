"""What every committed benchmark shares: short runs against servers started here, in rounds
(every configuration once a round, the rounds alternating: bench/rounds.py), one folder of
results per suite, the machine's CPU and load recorded before and after, ratios printed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import rounds as rounds_
from bench.app_launcher import Target
from bench.environment import cpu_line, dirty_line, machine, now_iso, uptime
from bench.load import LoadSpec
from bench.report import write_json, write_text
from bench.run import execute_run, ray_for_clients
from bench.suites.figures import chat_row as chat_row
from bench.suites.figures import fmt as fmt
from bench.suites.figures import overall as overall
from bench.suites.figures import quantile as quantile
from bench.suites.goals import ratio as ratio
from bench.workloads import Workload

RESULTS = Path(__file__).resolve().parent.parent / "results"
SCHEMA = "mmserve-bench/suite/2"


class Round:
    """One round of a suite: its runs and extras, its files named `<suite>-r<number>-<label>`.
    It answers what a suite's `summarize` reads (runs, extra, duration_s)."""

    def __init__(self, suite: Suite, number: int) -> None:
        self.suite, self.number = suite, number
        self.name = f"{suite.name}-r{number}"
        self.command, self.out, self.duration_s = suite.command, suite.out, suite.duration_s
        self.runs: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def run(self, label: str, target: Target, workload: Workload, spec: LoadSpec,
            bounds: dict[str, float] | None = None) -> dict[str, Any]:
        """One run, its files named `<suite>-r<number>-<label>`, kept in `runs`."""
        with ray_for_clients(target, None):
            report = execute_run(target, workload, spec, bounds or {},
                                 name=f"{self.name}-{label}", command=self.command,
                                 out=self.out)
        self.runs[label] = report
        overall = report["metrics"]["overall"]
        print(f"== {self.name} {label}: {overall['request_throughput']:.2f} req/s, items "
              f"{overall['item_throughput']:.2f}/s, e2e p95 "
              f"{(overall['e2e'] or {}).get('p95', float('nan')):.3f} s, errors "
              f"{overall['requests']['errors']}; {report['environment']['uptime_after']}",
              file=sys.stderr, flush=True)
        return report


OneRound = Callable[[Round], tuple[dict[str, Any], str]]
AcrossRounds = Callable[[Any, list[Round]], str]


class Suite:
    def __init__(self, name: str, command: str, out: Path | None, duration_s: float,
                 rounds: int = rounds_.DEFAULT_ROUNDS) -> None:
        self.name, self.command, self.duration_s = name, command, duration_s
        self.rounds = rounds
        self.out = out or RESULTS / name
        self.out.mkdir(parents=True, exist_ok=True)
        self.environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
        self.extra: dict[str, Any] = {}
        self.done_rounds: list[Round] = []

    def in_rounds(self, one_round: OneRound,
                  across: AcrossRounds | None = None) -> dict[str, Any]:
        """Runs `one_round` (every configuration once, in the same order) `self.rounds` times;
        the report: the rounds merged (bench/rounds.py), then each round's own summary."""
        summaries = []
        for number in range(1, self.rounds + 1):
            print(f"=== {self.name}: round {number}/{self.rounds}", file=sys.stderr, flush=True)
            round_ = Round(self, number)
            summaries.append(one_round(round_))
            self.done_rounds.append(round_)
        merged = rounds_.merge([results for results, _ in summaries])
        parts = [across(merged, self.done_rounds) if across else "",
                 rounds_.render(merged, len(summaries))]
        parts += [f"## Round {number}\n\n{markdown}"
                  for number, (_, markdown) in enumerate(summaries, 1)]
        self.extra["rounds"] = [{"round": r.number, "results": results, "extra": r.extra,
                                 "runs": {label: f"{report['name']}.json"
                                          for label, report in r.runs.items()}}
                                for r, (results, _) in zip(self.done_rounds, summaries)]
        return self.finish(merged, "\n".join(p for p in parts if p))

    def finish(self, results: dict[str, Any], markdown: str) -> dict[str, Any]:
        self.environment.update(finished_at=now_iso(), uptime_after=uptime())
        document = {"schema": SCHEMA, "name": self.name, "command": self.command,
                    "environment": self.environment, "rounds_run": len(self.done_rounds),
                    **self.extra, "results": results}
        write_json(document, self.out / f"{self.name}.json")
        header = self.header()
        write_text(header + markdown, self.out / f"{self.name}.md")
        print(header + markdown)
        print(json.dumps(results, indent=1), file=sys.stderr)
        return document

    def header(self) -> str:
        env = self.environment
        dirty = dirty_line(env)
        rounds = len(self.done_rounds)
        return (f"# {self.name} benchmark\n\n" + (f"> {dirty}\n\n" if dirty else "")
                + f"- command: `{self.command}`\n- commit: `{env.get('git_commit')}`\n"
                f"- machine: {env['host']}, {env['cpu_count']} CPUs, shared with other work; "
                f"`uptime` before: `{env['uptime_before']}`; after: `{env['uptime_after']}`\n"
                f"- CPU: {cpu_line(env)}\n"
                f"- each configuration: {self.duration_s:g} s measured after a warm-up"
                + (f", once in each of {rounds} alternated rounds" if rounds else "")
                + "; per-run reports (JSON summaries, Markdown, plots) beside this file\n\n")
