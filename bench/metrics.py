"""The run's metrics from its request records: throughput, latency distributions, errors,
goodput under an SLO; for the whole run and for each route. Beside them, `route_slo`: the
requests within their own route's objective (bench/objectives.py), and, of those that missed,
the stage blamed for each (bench/miss_attribution.py); the overall figures add up the routes'.

Warm-up records are left out. The measured window runs from the first measured request's start
to the last one's end; throughputs divide by it. Failed requests count as errors and are kept
out of the latency distributions (as vLLM's bench does).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench import slo as slo_rules
from bench.miss_attribution import misses_by_stage
from bench.objectives import Objectives, missed
from bench.records import RequestRecord
from bench.stats import summarize


def measured_window(records: list[RequestRecord]) -> tuple[float, float] | None:
    measured = [r for r in records if not r.warmup]
    ends = [r.finished_at() for r in measured if r.finished_at() is not None]
    if not measured or not ends:
        return None
    return min(r.start for r in measured), max(ends)


def error_counts(records: list[RequestRecord]) -> dict[str, int]:
    """Failed requests by HTTP status ('no_response' when none came, 'stream_error' when a
    stream that began with 200 reported an error in-band)."""
    counts: Counter[str] = Counter()
    for record in records:
        if record.ok:
            continue
        if record.status == 0:
            counts["no_response"] += 1
        elif 200 <= record.status < 300:
            counts["stream_error"] += 1
        else:
            counts[str(record.status)] += 1
    return dict(sorted(counts.items()))


def group_metrics(records: list[RequestRecord], duration_s: float,
                  bounds: dict[str, float]) -> dict[str, Any]:
    """Metrics of measured `records` over a window of `duration_s` seconds."""
    ok = [r for r in records if r.ok]
    per_s = (lambda total: total / duration_s) if duration_s > 0 else (lambda total: 0.0)
    output_tokens = sum(r.output_tokens or 0 for r in ok)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in ok)
    audio_s = sum(r.audio_duration_s or 0.0 for r in ok)
    good = sum(slo_rules.meets(r, bounds) for r in records)
    wers = [r.wer for r in ok if r.wer is not None]
    return {
        "requests": {"total": len(records), "ok": len(ok), "errors": len(records) - len(ok)},
        "errors_by_status": error_counts(records),
        "request_throughput": per_s(len(ok)),
        "item_throughput": per_s(sum(r.items for r in ok)),
        "output_token_throughput": per_s(output_tokens),
        "total_token_throughput": per_s(output_tokens + prompt_tokens),
        "output_tokens": output_tokens,
        "prompt_tokens": prompt_tokens,
        "ttft": summarize(r.ttft() for r in ok),
        "itl": summarize(gap for r in ok for gap in r.itls()),
        "tpot": summarize(r.tpot() for r in ok),
        "e2e": summarize(r.e2e() for r in ok),
        "rtf": summarize(r.rtf() for r in ok),
        "audio_seconds_per_s": per_s(audio_s),
        "aggregate_rtf": (duration_s / audio_s) if audio_s else None,
        "wer_mean": sum(wers) / len(wers) if wers else None,
        "stages": _stages(ok),
        "goodput": {"requests_per_s": per_s(good), "good": good,
                    "fraction": good / len(records) if records else None} if bounds else None,
    }


def _stages(records: list[RequestRecord]) -> dict[str, Any]:
    names = sorted({name for r in records for name in r.stages})
    return {name: summarize(r.stages.get(name) for r in records) for name in names}


def route_slo(records: list[RequestRecord], duration_s: float,
              objectives: Objectives) -> dict[str, Any]:
    """Of one route's measured `records`: its objective, how many met it (count, rate,
    fraction) and, of the rest, how many each stage is blamed for."""
    verdicts = [missed(r, objectives) for r in records]
    first = records[0] if records else None
    objective = objectives.bounds(first.path, first.stream) if first else {}
    return _attainment(sum(not v for v in verdicts), len(records), duration_s,
                       misses_by_stage(records, verdicts), objective)


def overall_route_slo(routes: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """Every route's requests, each judged by its own route's objective."""
    by_stage: Counter[str] = Counter()
    for route in routes:
        by_stage.update(route["misses_by_stage"])
    return _attainment(sum(r["good"] for r in routes), sum(r["total"] for r in routes),
                       duration_s, dict(sorted(by_stage.items(), key=lambda i: (-i[1], i[0]))),
                       None)


def _attainment(good: int, total: int, duration_s: float, by_stage: dict[str, int],
                objective: dict[str, float] | None) -> dict[str, Any]:
    return {"objective": objective, "total": total, "good": good, "missed": total - good,
            "fraction": good / total if total else None,
            "requests_per_s": good / duration_s if duration_s > 0 else 0.0,
            "misses_by_stage": by_stage}


def run_metrics(records: list[RequestRecord], bounds: dict[str, float],
                objectives: Objectives | None = None) -> dict[str, Any]:
    """{"duration_s", "warmup_excluded", "slo", "slo_unchecked", "objectives",
    "overall": {...}, "routes": {route: {...}}}; `objectives`: the app's by default."""
    objectives = objectives or Objectives.app_defaults()
    measured = [r for r in records if not r.warmup]
    window = measured_window(records)
    duration = (window[1] - window[0]) if window else 0.0
    by_route = {route: [r for r in measured if r.route == route]
                for route in sorted({r.route for r in measured})}
    routes = {route: {**group_metrics(group, duration, bounds),
                      "route_slo": route_slo(group, duration, objectives)}
              for route, group in by_route.items()}
    overall = {**group_metrics(measured, duration, bounds),
               "route_slo": overall_route_slo([m["route_slo"] for m in routes.values()],
                                              duration)}
    return {
        "duration_s": duration,
        "warmup_excluded": len(records) - len(measured),
        "slo": bounds,
        "slo_unchecked": slo_rules.unchecked(measured, bounds),
        "objectives": objectives.describe(),
        "overall": overall,
        "routes": routes,
    }
