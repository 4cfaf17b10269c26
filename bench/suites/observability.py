"""What tracing and metrics cost: the CLIP suite's app run (image embeddings, 32 clients, the
`clip` profile's two vision replicas behind Serve's HAProxy ingress) with the app's observability
on and off. Not the default profile: its vision group starts at one replica after every
redeploy and scales to two under load, and that ramp, not the 3% asked about, would decide
the result; nor its vLLM text replica, which every switch would restart for a minute.

"On" is the Server-Timing header, the app's metrics and tracing (no OTLP endpoint: spans are
made and exported nowhere, so their cost is counted without a collector's); "off" is all three
off. The switch is the app's `observability:` args, applied by a redeploy (every replica
restarts, vLLM's included; the warm-up covers the first calls). The machine drifts, so the two
alternate (on, off, on, off; half the duration each, the same requests each time) and their
halves are averaged. Goal: on within 3% of off in throughput, e2e p50 and e2e p95.

Each run also reports the share of answers that carried Server-Timing: all of them on, none
off, or the switch did not take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.app_launcher import running_app
from bench.load import LoadSpec
from bench.rounds import DEFAULT_ROUNDS
from bench.suites.common import Round, Suite, fmt, overall, quantile, ratio
from bench.suites.headers import run_recorded, with_app_args
from bench.workloads import build_workload

PROFILE = "clip"
INGRESS = "haproxy"
CLIENTS = 32
WARMUP_S = 10.0
ON = {"observability": {"server_timing": True, "metrics": True, "tracing": {"enabled": True}}}
OFF = {"observability": {"server_timing": False, "metrics": False,
                         "tracing": {"enabled": False}}}
ORDER = (("on", 1), ("off", 1), ("on", 2), ("off", 2))
# The goals: on / off, higher is better for throughput, lower for latency.
TARGETS = {"throughput_on_vs_off": 0.97}
LATENCY_TARGETS = {"e2e_p50_on_vs_off": 1.03, "e2e_p95_on_vs_off": 1.03}


def label(state: str, half: int) -> str:
    return f"observability-{state}-{half}"


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    suite = Suite("observability", command, out, duration_s, rounds)
    workload = build_workload("image-embedding", {"seed": 0})
    half = LoadSpec(concurrency=CLIENTS, duration_s=duration_s / 2, warmup_s=WARMUP_S)
    suite.extra.update(profile=PROFILE, ingress=INGRESS, settings={"on": ON, "off": OFF})
    with running_app(PROFILE, ingress=INGRESS) as app:
        def one_round(round_: Round) -> tuple[dict[str, Any], str]:
            for state, number in ORDER:
                target = with_app_args(app, ON if state == "on" else OFF)
                run_recorded(round_, label(state, number), target, workload, half)
            return summarize(round_)

        return suite.in_rounds(one_round)


def row(report: dict[str, Any]) -> dict[str, Any]:
    headers = report["response_headers"]
    return {"images_per_s": overall(report)["item_throughput"],
            "e2e_p50_s": quantile(report, "e2e", "p50"),
            "e2e_p95_s": quantile(report, "e2e", "p95"),
            "errors": overall(report)["requests"]["errors"],
            "server_timing_share": headers["server_timing_share"]}


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def switch_took(state: str, share: float | None) -> bool:
    """On: every answer carried Server-Timing; off: none did."""
    return share is not None and (share == 1.0 if state == "on" else share == 0.0)


def summarize(suite: Any) -> tuple[dict[str, Any], str]:
    rows = {name: row(report) for name, report in suite.runs.items()}
    means = {state: {key: _mean([r[key] for name, r in rows.items()
                                 if name.startswith(f"observability-{state}-")])
                     for key in ("images_per_s", "e2e_p50_s", "e2e_p95_s")}
             for state in ("on", "off")}
    ratios = {"throughput_on_vs_off": ratio(means["on"]["images_per_s"],
                                            means["off"]["images_per_s"]),
              "e2e_p50_on_vs_off": ratio(means["on"]["e2e_p50_s"], means["off"]["e2e_p50_s"]),
              "e2e_p95_on_vs_off": ratio(means["on"]["e2e_p95_s"], means["off"]["e2e_p95_s"])}
    met = {name: ratios[name] is not None and ratios[name] >= goal
           for name, goal in TARGETS.items()}
    met.update({name: ratios[name] is not None and ratios[name] <= goal
                for name, goal in LATENCY_TARGETS.items()})
    switched = {name: switch_took(name.split("-")[1], r["server_timing_share"])
                for name, r in rows.items()}
    duration = getattr(suite, "duration_s", None)
    lines = [f"Image embeddings at {CLIENTS} clients on the `{PROFILE}` profile; observability "
             "on and off alternating" + ("." if duration is None else
                                         f", {duration / 2:g} s a half after a {WARMUP_S:g} s "
                                         "warm-up."), "",
             "| run | images/s | e2e p50 s | e2e p95 s | errors | answers with Server-Timing |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        share = r["server_timing_share"]
        took = "" if switched[name] else " (switch did NOT take)"
        lines.append(f"| {name} | {r['images_per_s']:.2f} | {fmt(r['e2e_p50_s'], 3)} | "
                     f"{fmt(r['e2e_p95_s'], 3)} | {r['errors']} | "
                     f"{'-' if share is None else f'{100 * share:.0f}%'}{took} |")
    for state in ("on", "off"):
        m = means[state]
        lines.append(f"| observability {state} (mean of both halves) | {fmt(m['images_per_s'])}"
                     f" | {fmt(m['e2e_p50_s'], 3)} | {fmt(m['e2e_p95_s'], 3)} | | |")
    lines += ["", "| ratio (on / off) | value | goal |", "|---|---:|---|"]
    for name, value in ratios.items():
        goal = (f">= {TARGETS[name]}" if name in TARGETS else f"<= {LATENCY_TARGETS[name]}")
        lines.append(f"| {name} | {fmt(value, 3)} | {goal}: "
                     f"{'met' if met[name] else 'NOT met'} |")
    results = {"profile": PROFILE, "runs": rows, "means": means, "ratios": ratios,
               "switch_took": switched, "goals": {**TARGETS, **LATENCY_TARGETS},
               "goals_met": met}
    return results, "\n".join(lines) + "\n"
