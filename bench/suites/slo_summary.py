"""The slo suite's arithmetic (bench/suites/slo.py runs it): the trace it offers, each run's
figures, and `slo` set against `fifo` on the same trace, per round and across rounds. No Ray
here, so the unit tier checks it on synthetic reports.

A round's runs: `capacity-c<N>` (closed loop, N clients, under fifo), then `slo` and `fifo`
(the same bursty open loop at TIMES_CAPACITY times the capacity, same seed). Each policy's
figures, overall and per route: answered req/s, within-SLO req/s and share (each request
against its route's objective, bench/objectives.py), e2e and TTFT p95 (of the answered), the
share turned away with 429, and the misses by stage (bench/miss_attribution.py), with the 429s
taken out of `error` as `rejected-429`; beside them, each deployment's mean batch size (fixed
max_batch_size under fifo, chosen from the objective under slo). The goal, every round: slo's
within-SLO req/s at least 1.5x fifo's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.capacity import measured_capacity
from bench.load import LoadSpec
from bench.rounds import median_range, number
from bench.suites.goals import at_least, ratio

FIFO, SLO = "fifo", "slo"
POLICIES = (SLO, FIFO)  # the order a round runs them in
CAPACITY_CLIENTS = (8, 16)
TIMES_CAPACITY = 1.5
BURST_S, BURST_FACTOR, BURST_PERIOD_S = 10.0, 3.0, 60.0
GOALS = {"goodput_slo_vs_fifo": 1.5}
ERROR, REJECTED = "error", "rejected-429"
GOODPUT, THROUGHPUT, WITHIN = "goodput_requests_per_s", "request_throughput", "within_slo"
RATIOS = (GOODPUT, THROUGHPUT, WITHIN)
ROUTE_RATIOS = (GOODPUT, WITHIN, "e2e_p95", "ttft_p95")


def capacity_label(clients: int) -> str:
    return f"capacity-c{clients}"


def burst_period(duration_s: float) -> float:
    """The burst period nearest BURST_PERIOD_S that fits the measured window a whole number of
    times, so the window offers exactly the asked mean (bench/arrivals.py)."""
    return duration_s / max(1, round(duration_s / BURST_PERIOD_S))


def trace_spec(rate: float, duration_s: float, warmup_s: float, seed: int) -> LoadSpec:
    """The bursty open loop at a mean of `rate` requests/s, no cap on requests in flight; its
    first burst opens the measured window."""
    return LoadSpec(concurrency=0, rate=rate, arrivals="bursty",
                    burst_period_s=burst_period(duration_s), burst_s=BURST_S,
                    burst_factor=BURST_FACTOR, duration_s=duration_s, warmup_s=warmup_s,
                    seed=seed)


def capacity_of(reports: Iterable[dict[str, Any]]) -> float:
    """The most requests/s any closed-loop level answered (bench/capacity.py)."""
    return measured_capacity({"name": "capacity", "points": [
        {"overall": report["metrics"]["overall"]} for report in reports]})


def misses_by_stage(by_stage: dict[str, int], errors_by_status: dict[str, int]) -> dict[str, int]:
    """The misses by stage with the requests turned away (429: admission at the ingress or a
    batcher's predicted miss) apart from the other failures under `error`."""
    rejected = min(errors_by_status.get("429", 0), by_stage.get(ERROR, 0))
    split = {**by_stage, ERROR: by_stage.get(ERROR, 0) - rejected, REJECTED: rejected}
    kept = {stage: n for stage, n in split.items() if n > 0}
    return dict(sorted(kept.items(), key=lambda item: (-item[1], item[0])))


def group_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """One run's figures over a group of requests (the run, or one route)."""
    slo = metrics.get("route_slo") or {}
    errors_by_status = metrics.get("errors_by_status") or {}
    total = metrics["requests"]["total"]
    return {THROUGHPUT: metrics[THROUGHPUT], GOODPUT: slo.get("requests_per_s"),
            WITHIN: slo.get("fraction"), "requests": total,
            "errors": metrics["requests"]["errors"],
            "rejected_429_share": errors_by_status.get("429", 0) / total if total else None,
            "e2e_p95": (metrics.get("e2e") or {}).get("p95"),
            "ttft_p95": (metrics.get("ttft") or {}).get("p95"),
            "misses_by_stage": misses_by_stage(slo.get("misses_by_stage") or {},
                                               errors_by_status)}


def run_figures(report: dict[str, Any]) -> dict[str, Any]:
    """A policy's run: its figures overall, per route, and its deployments' mean batch sizes."""
    metrics = report["metrics"]
    batch = ((report.get("server") or {}).get("summary") or {}).get("batch_size") or {}
    return {**group_figures(metrics["overall"]), "offered_rate": report["load"].get("rate"),
            "mean_batch_size": dict(sorted(batch.items())),
            "routes": {route: group_figures(m) for route, m in sorted(metrics["routes"].items())}}


def compare(fifo: dict[str, Any], slo: dict[str, Any]) -> dict[str, Any]:
    """slo / fifo, overall and per route (above 1: slo serves more; for the p95s, below 1:
    slo answers sooner)."""
    routes = sorted({*fifo["routes"], *slo["routes"]})
    return {**{key: ratio(slo[key], fifo[key]) for key in RATIOS},
            "routes": {route: {key: ratio((slo["routes"].get(route) or {}).get(key),
                                          (fifo["routes"].get(route) or {}).get(key))
                               for key in ROUTE_RATIOS} for route in routes}}


def goals_met(fifo: dict[str, Any], slo: dict[str, Any]) -> dict[str, bool]:
    return {"goodput_at_least_1_5x_fifo": at_least(slo[GOODPUT], fifo[GOODPUT],
                                                   GOALS["goodput_slo_vs_fifo"])}


def summarize(round_: Any) -> tuple[dict[str, Any], str]:
    """One round (its `runs`: label -> report) as results and Markdown."""
    levels = {label: report for label, report in round_.runs.items()
              if label.startswith("capacity-")}
    policies = {p: run_figures(round_.runs[p]) for p in (FIFO, SLO) if p in round_.runs}
    results: dict[str, Any] = {
        "capacity": {"levels": {label.removeprefix("capacity-"):
                                r["metrics"]["overall"][THROUGHPUT] for label, r in
                                levels.items()},
                     "requests_per_s": capacity_of(levels.values()) if levels else None},
        "policies": policies}
    lines = [_trace_line(results["capacity"], policies, round_.runs.get(FIFO)), ""]
    if len(policies) == 2:
        results.update(slo_vs_fifo=compare(policies[FIFO], policies[SLO]), goals=GOALS,
                       goals_met=goals_met(policies[FIFO], policies[SLO]))
        lines += round_tables(policies[FIFO], policies[SLO], results["slo_vs_fifo"],
                              results["goals_met"])
    return results, "\n".join(lines) + "\n"


def _trace_line(capacity: dict[str, Any], policies: dict[str, Any],
                fifo_report: dict[str, Any] | None) -> str:
    levels = ", ".join(f"{label} {number(v)}" for label, v in capacity["levels"].items())
    text = (f"Capacity (closed loop, the mixed workload, under fifo): {levels or '-'} req/s; "
            f"the most, {number(capacity['requests_per_s'])} req/s, is the capacity.")
    if fifo_report is None:
        return text
    load = fifo_report["load"]
    return text + (f" Offered to both policies: a bursty open loop at a mean of "
                   f"{number(load['rate'])} req/s ({TIMES_CAPACITY:g}x), bursts of "
                   f"{load['burst_s']:g} s at {load['burst_factor']:g}x every "
                   f"{load['burst_period_s']:g} s, seed {load['seed']}.")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


OVERALL_ROWS = ((THROUGHPUT, "req/s answered", number), (GOODPUT, "within-SLO req/s", number),
                (WITHIN, "share within SLO", _share),
                ("rejected_429_share", "share turned away (429)", _share),
                ("errors", "failed (429 included)", number),
                ("requests", "requests measured", number))


def round_tables(fifo: dict[str, Any], slo: dict[str, Any], ratios: dict[str, Any],
                 met: dict[str, bool]) -> list[str]:
    """A round's Markdown: overall, per route, misses by stage, batch sizes, the goal."""
    lines = ["| all routes | fifo | slo | slo / fifo |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {show(fifo[key])} | {show(slo[key])} | {number(ratios.get(key))} |"
              for key, name, show in OVERALL_ROWS]
    lines += ["", *route_table(fifo, slo, ratios["routes"]), "", *miss_table(fifo, slo), "",
              *batch_table(fifo, slo), "", "| goal | slo / fifo | this round |", "|---|---:|---|",
              f"| within-SLO req/s >= {GOALS['goodput_slo_vs_fifo']:g}x fifo's | "
              f"{number(ratios[GOODPUT])} | "
              f"{'met' if met['goodput_at_least_1_5x_fifo'] else 'NOT met'} |"]
    return lines


def route_table(fifo: dict[str, Any], slo: dict[str, Any],
                ratios: dict[str, dict[str, float | None]]) -> list[str]:
    lines = ["| route | within-SLO req/s fifo | slo | slo / fifo | share within fifo | slo | "
             "e2e p95 s fifo | slo | TTFT p95 s fifo | slo | 429 fifo | slo |",
             "|---|" + "---:|" * 11]
    for route in ratios:
        f, s = fifo["routes"].get(route) or {}, slo["routes"].get(route) or {}
        lines.append(f"| {route} | {number(f.get(GOODPUT))} | {number(s.get(GOODPUT))} | "
                     f"{number(ratios[route][GOODPUT])} | {_share(f.get(WITHIN))} | "
                     f"{_share(s.get(WITHIN))} | {number(f.get('e2e_p95'))} | "
                     f"{number(s.get('e2e_p95'))} | {number(f.get('ttft_p95'))} | "
                     f"{number(s.get('ttft_p95'))} | {_share(f.get('rejected_429_share'))} | "
                     f"{_share(s.get('rejected_429_share'))} |")
    return lines


def miss_table(fifo: dict[str, Any], slo: dict[str, Any]) -> list[str]:
    """Missed requests by the stage blamed, over all routes, then route by route."""
    lines = ["| misses by stage | fifo | slo |", "|---|---:|---:|"]
    scopes = [("all routes", fifo, slo)] + [
        (route, fifo["routes"].get(route) or {}, slo["routes"].get(route) or {})
        for route in sorted({*fifo["routes"], *slo["routes"]})]
    for scope, f, s in scopes:
        f_stages, s_stages = f.get("misses_by_stage") or {}, s.get("misses_by_stage") or {}
        for stage in dict.fromkeys([*f_stages, *s_stages]):
            lines.append(f"| {scope}: {stage} | {f_stages.get(stage, 0)} | "
                         f"{s_stages.get(stage, 0)} |")
    return lines


def batch_table(fifo: dict[str, Any], slo: dict[str, Any]) -> list[str]:
    calls = sorted({*fifo["mean_batch_size"], *slo["mean_batch_size"]})
    lines = ["| mean batch size | fifo (max_batch_size) | slo (from the objective) |",
             "|---|---:|---:|"]
    lines += [f"| {call} | {number(fifo['mean_batch_size'].get(call))} | "
              f"{number(slo['mean_batch_size'].get(call))} |" for call in calls]
    return lines if calls else lines + ["| (no batch sizes scraped) | - | - |"]


HEADLINE = ((GOODPUT, "within-SLO req/s"), (THROUGHPUT, "req/s answered"),
            (WITHIN, "share within SLO"), ("rejected_429_share", "share turned away (429)"))
ROUTE_HEADLINE = ((GOODPUT, "within-SLO req/s"), ("e2e_p95", "e2e p95 s"),
                  ("ttft_p95", "TTFT p95 s"))


def across_rounds(merged: dict[str, Any], rounds: list[Any]) -> str:
    """fifo beside slo, median (min-max) across rounds: overall, then route by route."""
    policies = merged.get("policies") or {}
    ratios = merged.get("slo_vs_fifo") or {}
    if FIFO not in policies or SLO not in policies:
        return ""
    fifo, slo = policies[FIFO], policies[SLO]
    capacity = (merged.get("capacity") or {}).get("requests_per_s")
    lines = [f"## fifo against slo, across {len(rounds)} rounds", "",
             f"Capacity measured each round: {_cell(capacity)} req/s; offered: "
             f"{_cell(fifo.get('offered_rate'))} req/s. Median of the rounds (min-max).", "",
             "| metric | fifo | slo | slo / fifo |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {_cell(fifo.get(key))} | {_cell(slo.get(key))} | "
              f"{_cell(ratios.get(key))} |" for key, name in HEADLINE]
    for route in sorted({*(fifo.get("routes") or {}), *(slo.get("routes") or {})}):
        f, s = (fifo.get("routes") or {}).get(route, {}), (slo.get("routes") or {}).get(route, {})
        r = (ratios.get("routes") or {}).get(route, {})
        lines += [f"| {route} {name} | {_cell(f.get(key))} | {_cell(s.get(key))} | "
                  f"{_cell(r.get(key))} |" for key, name in ROUTE_HEADLINE
                  if _cell(f.get(key)) != "-" or _cell(s.get(key)) != "-"]
    return "\n".join(lines) + "\n"


def _cell(node: Any) -> str:
    return median_range(node) if isinstance(node, dict) and "median" in node else "-"
