"""Places client actors on the Ray cluster's nodes, hands each its share of the load, shows
progress, and gathers every request record. Ray is imported where the clients are started, so
the load's plans and specs import without it.

By default there is one client actor per alive node, pinned there, so adding nodes adds load
capacity; `actors` puts several on each node (round robin) when one process is not enough.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.arrivals import (
    BurstSchedule,
    arrival_times,
    bursty_arrival_times,
    split_round_robin,
)
from bench.client_actor import ClientPlan, remote_load_client
from bench.records import RequestRecord
from bench.workloads.base import Workload

START_DELAY_S = 1.0
PROGRESS_EVERY_S = 5.0
ARRIVALS = ("poisson", "bursty")  # open loop: one rate, or bursts on a schedule (arrivals.py)


@dataclass
class LoadSpec:
    concurrency: int = 8  # closed loop: clients; open loop: cap on requests in flight (0: none)
    rate: float | None = None  # requests/s: open loop; None: closed loop
    burstiness: float = 1.0
    arrivals: str = "poisson"  # open loop: one of ARRIVALS
    burst_period_s: float = 60.0  # bursty: a burst every this many seconds,
    burst_s: float = 10.0  # lasting this long,
    burst_factor: float = 3.0  # at this many times the mean rate (the mean stays `rate`)
    duration_s: float | None = 30.0
    requests: int | None = None
    warmup_s: float = 5.0
    actors: int | None = None  # None: one per alive node
    client_cpus: float = 0.0
    seed: int = 0
    timeout_s: float = 300.0
    # Closed loop: each loop waits this long (seconds, uniform from 0 to twice it) after an
    # answer before its next request, as a user reads before the next turn; 0: at once.
    think_s: float = 0.0
    # Open loop: limits refusals among the last `retry_window_s` of arrivals sent again once,
    # each after its Retry-After (bench/client_actor.py), this many over all the actors.
    retry_refusals: int = 0
    retry_window_s: float = 1.0

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def describe(self) -> dict[str, Any]:
        described = {"mode": self.mode, **asdict(self)}
        if self.rate is not None and self.arrivals == "bursty":
            described["burst_base_rate"] = burst_schedule(self).base_rate
        return described


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def client_plans(spec: LoadSpec, actors: int, start_at: float) -> list[ClientPlan]:
    """Each actor's share: request loops (closed) or send times (open), and measured requests."""
    if spec.rate is None:
        loops = [n for n in split_evenly(spec.concurrency, actors) if n > 0]
        quotas = _quotas(spec.requests, loops)
        return [ClientPlan(i, start_at, spec.warmup_s, spec.duration_s, quotas[i], n, spec.seed,
                           think_s=spec.think_s) for i, n in enumerate(loops)]
    times = open_loop_arrivals(spec)
    cap = math.ceil(spec.concurrency / actors) if spec.concurrency > 0 else 0
    retries = split_evenly(spec.retry_refusals, actors)
    return [ClientPlan(i, start_at, spec.warmup_s, spec.duration_s, None, cap, spec.seed, share,
                       retry_refusals=retries[i], retry_window_s=spec.retry_window_s)
            for i, share in enumerate(split_round_robin(times, actors))]


def burst_schedule(spec: LoadSpec) -> BurstSchedule:
    """The bursty schedule of an open-loop spec: its first burst opens the measured window."""
    return BurstSchedule(spec.rate, spec.burst_period_s, spec.burst_s, spec.burst_factor,
                         phase_s=spec.warmup_s)


def open_loop_arrivals(spec: LoadSpec) -> list[float]:
    """Every send time of an open-loop run, warm-up included, seconds from its start."""
    if spec.arrivals not in ARRIVALS:
        raise ValueError(f"unknown arrivals {spec.arrivals!r}; choose from {', '.join(ARRIVALS)}")
    until = None if spec.duration_s is None else spec.warmup_s + spec.duration_s
    rng = random.Random(spec.seed)
    if spec.arrivals == "bursty":
        return bursty_arrival_times(burst_schedule(spec), rng, spec.burstiness, until,
                                    spec.requests, spec.warmup_s)
    return arrival_times(spec.rate, rng, spec.burstiness, until, spec.requests, spec.warmup_s)


def _quotas(requests: int | None, loops: list[int]) -> list[int | None]:
    if requests is None:
        return [None] * len(loops)
    total = sum(loops)
    quotas = [requests * n // total for n in loops]
    for i in range(requests - sum(quotas)):
        quotas[i % len(quotas)] += 1
    return quotas


def alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def start_clients(url: str, workload: Workload, spec: LoadSpec,
                  routes: dict[str, str] | None = None, api_key: str | None = None
                  ) -> list[Any]:
    """The client actors of one load; `api_key`: the key all its requests send (None: the
    environment's), given to the actors in memory only."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = alive_nodes()
    wanted = spec.actors or len(nodes)
    if spec.rate is None:
        wanted = min(wanted, spec.concurrency)
    workload_ref = ray.put(workload)
    clients = []
    for i in range(max(1, wanted)):
        node = nodes[i % len(nodes)]
        options: dict[str, Any] = {
            "num_cpus": spec.client_cpus, "max_concurrency": 10_000,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
        clients.append(remote_load_client().options(**options).remote(
            url, workload_ref, spec.timeout_s, routes, api_key))
    return clients


@dataclass
class Load:
    """One of several loads run at once (bench/tenant_load.py): a workload at a spec, sent
    with its own key."""

    workload: Workload
    spec: LoadSpec
    api_key: str | None = None


def generate_load(url: str, workload: Workload, spec: LoadSpec, quiet: bool = False,
                  routes: dict[str, str] | None = None, api_key: str | None = None
                  ) -> tuple[list[RequestRecord], dict[str, Any]]:
    """Runs the load to completion; returns the records and where the clients ran. `routes`:
    {path: base URL} for the requests not sent to `url`; `api_key`: the key every request
    sends (None: $MMSERVE_API_KEY)."""
    records, clients = generate_loads(url, [Load(workload, spec, api_key)], quiet, routes)
    return records[0], clients


def generate_loads(url: str, loads: list[Load], quiet: bool = False,
                   routes: dict[str, str] | None = None,
                   on_start: Callable[[float], None] | None = None
                   ) -> tuple[list[list[RequestRecord]], dict[str, Any]]:
    """Runs several loads at once, each with its own client actors, all starting at the same
    moment (told to `on_start`, epoch seconds, once it is set); returns each load's records
    and where the clients ran."""
    import ray

    started = [start_clients(url, load.workload, load.spec, routes, load.api_key)
               for load in loads]
    all_clients = [client for clients in started for client in clients]
    try:
        placement = ray.get([client.node.remote() for client in all_clients])
        start_at = time.time() + START_DELAY_S
        if on_start is not None:
            on_start(start_at)
        runs, used = [], []
        for load, clients in zip(loads, started):
            plans = client_plans(load.spec, len(clients), start_at)
            used += clients[:len(plans)]
            runs.append([client.run.remote(plan) for client, plan in zip(clients, plans)])
        longest = max((load.spec for load in loads),
                      key=lambda spec: spec.warmup_s + (spec.duration_s or 0.0))
        _wait_with_progress([run for batch in runs for run in batch], used, longest,
                            start_at, quiet)
        records = [[RequestRecord.from_dict(r) for batch in ray.get(load_runs) for r in batch]
                   for load_runs in runs]
    finally:
        for client in all_clients:
            ray.kill(client)
    return records, {"actors": len(used), "nodes": sorted({p["ip"] for p in placement}),
                     "start_at": start_at}


def _wait_with_progress(runs: list, clients: list, spec: LoadSpec, start_at: float,
                        quiet: bool) -> None:
    import ray

    pending = list(runs)
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=PROGRESS_EVERY_S)
        if pending and not quiet:
            states = ray.get([client.progress.remote() for client in clients])
            print(progress_line(states, spec, time.time() - start_at), file=sys.stderr,
                  flush=True)


def progress_line(states: list[dict[str, int]], spec: LoadSpec, elapsed: float) -> str:
    done = sum(s["done"] for s in states)
    errors = sum(s["errors"] for s in states)
    in_flight = sum(s["in_flight"] for s in states)
    measuring = max(0.0, elapsed - spec.warmup_s)
    phase = "warm-up" if elapsed < spec.warmup_s else "measuring"
    if spec.duration_s is not None and elapsed > spec.warmup_s + spec.duration_s:
        phase = "waiting for the last answers"
    if spec.duration_s is not None:
        total = f"{elapsed:5.0f}s/{spec.warmup_s + spec.duration_s:.0f}s"
    else:
        total = f"{elapsed:5.0f}s, {done}/{spec.requests} requests"
    rate = done / measuring if measuring > 0 else 0.0
    return (f"[{total}] {phase}: {done} done, {errors} errors, {in_flight} in flight, "
            f"{rate:.2f} req/s")
