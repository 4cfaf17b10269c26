"""What scheduling by SLO buys: the app on the default profile under a bursty overload, its
queues in arrival order with fixed batch sizes (`slo.scheduling: fifo`, today's policy) against
earliest objective first with admission and batch sizes from the objective (`slo`), the same
profile otherwise and the same trace (docs/scheduling.md).

Each round, on one app (PROFILE, started once):
1. capacity: the mixed workload in a closed loop at 8 and 16 clients under fifo, each for the
   whole --duration (a window shorter than the pipeline's and speech's e2e under load counts
   too few of their answers and reads low); the most requests/s either level answered is the
   capacity (bench/capacity.py). A closed loop finds it
   without knowing it first: at saturation it answers what the app can, of this mix, and no
   queue grows past the clients. A rate sweep would need rates around the unknown capacity, and
   above it its queues grow for the whole run, so what it measures depends on the run's length
   and timeouts;
2. `slo` then `fifo`: the same bursty open loop (Poisson arrivals, 10 s bursts at 3x the mean,
   the first opening the measured window, whole periods; bench/arrivals.py) at 1.5x that
   capacity, seeded with the round's number. A policy change redeploys the app with
   `slo.scheduling` set (every replica restarts: the text engine takes the policy at start), so
   both traces start on fresh replicas; the next round's capacity runs on the fifo app as the
   last trace left it.

Reported per round and across rounds (bench/suites/slo_summary.py): within-SLO requests/s per
route and overall, e2e and TTFT p95 per route, answered requests/s, the share turned away with
429, misses by stage, mean batch sizes, and slo / fifo. Goal, every round: slo's within-SLO
requests/s at least 1.5x fifo's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.app_launcher import Target, running_app
from bench.app_under_test import app_args
from bench.load import LoadSpec, burst_schedule
from bench.rounds import DEFAULT_ROUNDS
from bench.suites import slo_summary
from bench.suites.common import Round, Suite
from bench.suites.headers import with_app_args
from bench.workloads import DEFAULT_MIX, build_workload
from deployments.core.config import Slo

PROFILE = "cpu"
WARMUP_S = 20.0
CAPACITY_WARMUP_S = 10.0


class PolicySwitch:
    """The app under one scheduling policy at a time, redeployed only when it changes."""

    def __init__(self, app: Target) -> None:
        self.app, self.current = app, app
        self.policy = (app_args(app).get("slo") or {}).get("scheduling", Slo().scheduling)

    def to(self, policy: str) -> Target:
        if policy != self.policy:
            self.current = with_app_args(self.app, {"slo": {"scheduling": policy}})
            self.policy = policy
        return self.current


def run(command: str, out: Path | None, duration_s: float,
        rounds: int = DEFAULT_ROUNDS) -> dict[str, Any]:
    try:  # a duration the bursts cannot fit fails here, before the app starts
        burst_schedule(slo_summary.trace_spec(1.0, duration_s, WARMUP_S, 0))
    except ValueError as error:
        raise SystemExit(f"slo suite, --duration {duration_s:g}s: {error}") from None
    suite = Suite("slo", command, out, duration_s, rounds)
    workload = build_workload("mixed", {"mix": DEFAULT_MIX, "output_len": "uniform:16,48"})
    closed = LoadSpec(duration_s=duration_s, warmup_s=CAPACITY_WARMUP_S)
    suite.extra.update(profile=PROFILE, times_capacity=slo_summary.TIMES_CAPACITY,
                       capacity_clients=list(slo_summary.CAPACITY_CLIENTS))
    with running_app(PROFILE) as app:
        switch = PolicySwitch(app)

        def one_round(round_: Round) -> tuple[dict[str, Any], str]:
            fifo = switch.to(slo_summary.FIFO)
            levels = {clients: round_.run(slo_summary.capacity_label(clients), fifo, workload,
                                          replace(closed, concurrency=clients))
                      for clients in slo_summary.CAPACITY_CLIENTS}
            rate = slo_summary.TIMES_CAPACITY * slo_summary.capacity_of(levels.values())
            trace = slo_summary.trace_spec(rate, duration_s, WARMUP_S, seed=round_.number)
            for policy in slo_summary.POLICIES:
                target = switch.to(policy)
                round_.extra.setdefault("app_args_slo", {})[policy] = app_args(target).get("slo")
                round_.run(policy, target, workload, trace)
            return slo_summary.summarize(round_)

        return suite.in_rounds(one_round, slo_summary.across_rounds)
