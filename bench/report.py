"""The run report: one JSON document per run (schema in docs/benchmarks.md), and its files.

    {
      "schema": "mmserve-bench/run/1",
      "name", "command",
      "environment": {host, cpu_count, python, ray, git_commit, started_at, finished_at,
                      uptime_before, uptime_after},
      "target": {url, kind, profile, metrics_urls, config},
      "workload": {...the workload's own description...},
      "load": {mode, concurrency, rate, burstiness, duration_s, requests, warmup_s, actors,
               client_cpus, seed, timeout_s},
      "clients": {actors, nodes, start_at},
      "metrics": {duration_s, warmup_excluded, slo, slo_unchecked, overall: {...}, routes: {...}},
      "server": {available, targets, interval_s, errors, series: [...], summary: {...}},
      "records": [...one per request, warm-up included and flagged...]
    }
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.records import RequestRecord
from bench.redact import scrub

SCHEMA = "mmserve-bench/run/1"


def build_report(*, name: str, command: str, environment: dict[str, Any],
                 target: dict[str, Any], workload: dict[str, Any], load: dict[str, Any],
                 clients: dict[str, Any], metrics: dict[str, Any], server: dict[str, Any],
                 records: list[RequestRecord] | None) -> dict[str, Any]:
    report = {"schema": SCHEMA, "name": name, "command": command, "environment": environment,
              "target": target, "workload": workload, "load": load, "clients": clients,
              "metrics": metrics, "server": server}
    if records is not None:
        report["records"] = [r.to_dict() for r in records]
    return report


def records_of(report: dict[str, Any]) -> list[RequestRecord]:
    return [RequestRecord.from_dict(r) for r in report.get("records", [])]


def load_report(path: str | Path) -> dict[str, Any]:
    report = json.loads(Path(path).read_text())
    if not str(report.get("schema", "")).startswith("mmserve-bench/"):
        raise ValueError(f"{path} is not an mmserve bench report")
    return report


def write_json(report: dict[str, Any], path: Path) -> Path:
    return write_text(json.dumps(report, indent=1, default=_jsonable) + "\n", path)


def write_text(text: str, path: Path) -> Path:
    """Writes a report file, with every key this process knows redacted (bench/redact.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scrub(text))
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
