"""Suite runs that also read the answers' headers: what the response cache did (`X-Cache`) and
the time the server says it spent (`Server-Timing`), per request, summarized beside the run's
metrics as `report["response_headers"]`. The per-request records are read, then left out of
the report files as usual.

`Server-Timing` entries are `name;dur=MS` (milliseconds). The time at the ingress is its
`total` entry; where no answer has one, the client's end-to-end latency stands in for it, and
`ingress_source` says which was used.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from typing import Any

from bench.app_launcher import Target, redeploy
from bench.load import LoadSpec
from bench.records import RequestRecord
from bench.report import records_of
from bench.run import execute_run, ray_for_clients, write_outputs
from bench.server_timing import TOTAL, parse_server_timing
from bench.stats import summarize
from bench.suites.common import Round, fmt, overall
from bench.workloads import Workload
from cluster.deploy import with_args


def with_app_args(app: Target, args: dict[str, Any]) -> Target:
    """The app redeployed on its cluster with these builder args merged into its own. Serve
    gives an app whose args change a new code version, so every replica restarts."""
    return redeploy(replace(app, config=with_args(app.config, args)), [])


def header_summary(records: list[RequestRecord]) -> dict[str, Any]:
    """Of the measured answers that succeeded: X-Cache counts and hit share, how many carried
    Server-Timing, and the latency at the ingress (its `total`, else the client's e2e) beside
    the client's."""
    ok = [r for r in records if not r.warmup and r.ok]
    verdicts = Counter(r.headers.get("X-Cache", "none") for r in ok)
    timed = [r for r in ok if "Server-Timing" in r.headers]
    totals = [parse_server_timing(r.headers["Server-Timing"]).get(TOTAL) for r in timed]
    totals = [t for t in totals if t is not None]
    client = summarize(r.e2e() for r in ok)
    return {"responses": len(ok), "x_cache": dict(sorted(verdicts.items())),
            "hit_share": verdicts["hit"] / len(ok) if ok else None,
            "server_timing_share": len(timed) / len(ok) if ok else None,
            "server_total": summarize(totals),
            "ingress": summarize(totals) if totals else client,
            "ingress_source": "server-timing total" if totals else "client e2e",
            "client_e2e": client}


def run_recorded(suite: Round, label: str, target: Target, workload: Workload,
                 spec: LoadSpec) -> dict[str, Any]:
    """Round.run, with the answers' headers summarized into the report."""
    name = f"{suite.name}-{label}"
    with ray_for_clients(target, None):
        report = execute_run(target, workload, spec, {}, name=name, command=suite.command,
                             out=None, include_records=True)
    records = records_of(report)
    del report["records"]
    report["response_headers"] = header_summary(records)
    write_outputs(report, records, suite.out, name)
    suite.runs[label] = report
    o, h = overall(report), report["response_headers"]
    print(f"== {label}: {o['request_throughput']:.2f} req/s, e2e p95 "
          f"{(o['e2e'] or {}).get('p95', float('nan')):.4f} s, errors "
          f"{o['requests']['errors']}, X-Cache {h['x_cache']}, ingress p99 "
          f"{fmt(ms(h['ingress'], 'p99'))} ms ({h['ingress_source']}); "
          f"{report['environment']['uptime_after']}", file=sys.stderr, flush=True)
    return report


def ms(summary: dict[str, float] | None, q: str) -> float | None:
    return None if not summary else summary[q] * 1000
