"""What every committed benchmark shares: short runs against servers started here, one folder
of results per suite, the machine's load recorded before and after, ratios printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.app_launcher import Target
from bench.environment import machine, now_iso, uptime
from bench.load import LoadSpec
from bench.report import write_json
from bench.run import execute_run, ray_for_clients
from bench.workloads import Workload

RESULTS = Path(__file__).resolve().parent.parent / "results"
SCHEMA = "mmserve-bench/suite/1"


class Suite:
    def __init__(self, name: str, command: str, out: Path | None, duration_s: float) -> None:
        self.name, self.command, self.duration_s = name, command, duration_s
        self.out = out or RESULTS / name
        self.out.mkdir(parents=True, exist_ok=True)
        self.environment = {**machine(), "started_at": now_iso(), "uptime_before": uptime()}
        self.runs: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, Any] = {}

    def run(self, label: str, target: Target, workload: Workload, spec: LoadSpec,
            bounds: dict[str, float] | None = None) -> dict[str, Any]:
        with ray_for_clients(target, None):
            report = execute_run(target, workload, spec, bounds or {},
                                 name=f"{self.name}-{label}", command=self.command,
                                 out=self.out)
        self.runs[label] = report
        overall = report["metrics"]["overall"]
        print(f"== {label}: {overall['request_throughput']:.2f} req/s, items "
              f"{overall['item_throughput']:.2f}/s, e2e p95 "
              f"{(overall['e2e'] or {}).get('p95', float('nan')):.3f} s, errors "
              f"{overall['requests']['errors']}; {report['environment']['uptime_after']}",
              file=sys.stderr, flush=True)
        return report

    def finish(self, results: dict[str, Any], markdown: str) -> dict[str, Any]:
        self.environment.update(finished_at=now_iso(), uptime_after=uptime())
        document = {"schema": SCHEMA, "name": self.name, "command": self.command,
                    "environment": self.environment, **self.extra, "results": results,
                    "runs": {label: f"{report['name']}.json"
                             for label, report in self.runs.items()}}
        write_json(document, self.out / f"{self.name}.json")
        header = (f"# {self.name} benchmark\n\n- command: `{self.command}`\n"
                  f"- machine: {self.environment['host']}, {self.environment['cpu_count']} "
                  f"CPUs, shared with other work; `uptime` before: "
                  f"`{self.environment['uptime_before']}`; after: "
                  f"`{self.environment['uptime_after']}`\n"
                  f"- each configuration: {self.duration_s:g} s measured after a warm-up; "
                  "per-run reports (JSON summaries, Markdown, plots) beside this "
                  "file\n\n")
        (self.out / f"{self.name}.md").write_text(header + markdown)
        print(header + markdown)
        print(json.dumps(results, indent=1), file=sys.stderr)
        return document


def overall(report: dict[str, Any]) -> dict[str, Any]:
    return report["metrics"]["overall"]


def quantile(report: dict[str, Any], metric: str, q: str) -> float | None:
    values = overall(report).get(metric)
    return values[q] if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def chat_row(report: dict[str, Any]) -> dict[str, Any]:
    """A streaming-chat run's figures: tokens/s, TTFT, ITL, errors, goodput, token counts."""
    o = overall(report)
    ok = o["requests"]["ok"]
    goodput = o.get("goodput") or {}
    return {"clients": report["load"]["concurrency"],
            "output_tokens_per_s": o["output_token_throughput"],
            "ttft_p50": quantile(report, "ttft", "p50"),
            "ttft_p95": quantile(report, "ttft", "p95"),
            "itl_p50": quantile(report, "itl", "p50"),
            "requests": ok, "errors": o["requests"]["errors"],
            "prompt_tokens_per_request": o["prompt_tokens"] / ok if ok else None,
            "output_tokens_per_request": o["output_tokens"] / ok if ok else None,
            "goodput_requests_per_s": goodput.get("requests_per_s"),
            "goodput_fraction": goodput.get("fraction")}
