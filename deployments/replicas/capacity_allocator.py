"""The capacity allocator: one decision for all replica groups, so cores follow the work.

Each tick it sees every group's load (`GroupLoad`) and the CPUs the groups may hold together,
and decides each group's replica count and threads per replica (`GroupDecision`, with the
reason in words). Units: a group's pressure is its predicted queue wait over the part of its
latency objective that waiting may take:

    wait      = (queued + running requests) / (running replicas x service rate per replica)
    pressure  = wait / (busy_fraction x objective)       busy above 1

With the service rate unknown, a replica is taken to finish `target_ongoing_requests` in
busy_fraction x objective, so a group is busy past that many requests per replica, today's
queue-policy threshold. The rules, one step per group per tick:

- bounds first: a count outside min..max goes back inside at once;
- release: a group that could lose a replica and still wait under slack_fraction x objective
  (slack) for downscale_delay_s gives one back to the free CPUs;
- gain: a group busy for upscale_delay_s, below max and with no replica still starting, gains
  one from the free CPUs, else takes one from a group slack for reclaim_delay_s (shorter than
  downscale_delay_s: capacity goes to a group missing its objective sooner than it would be
  given back unasked); the busiest group first, and never from another busy group;
- threads: replicas of groups with requests split the CPUs between them; a group with no
  requests keeps its base.

Each group's timers (busy since, slack since) are in `state`, a dict of plain floats per
group, so the delays are seconds whatever the tick and the same loads give the same decisions.
Stdlib only: Serve pickles this module by value into its controller with the policy that calls
it (deployments/replicas/capacity_policy.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

BUSY_SINCE = "allocator_busy_since"  # when the group's pressure first went past 1
SLACK_SINCE = "allocator_slack_since"  # when the group first could spare a replica
_EPS = 1e-9


@dataclass(frozen=True)
class GroupLoad:
    """One replica group as the allocator sees it at one tick."""

    name: str
    target_replicas: int  # the count Serve is aiming at
    running_replicas: int  # the replicas serving now
    min_replicas: int
    max_replicas: int
    cpus_per_replica: float
    queued: float  # requests waiting for a replica
    running: float  # requests at a replica (its own batch queue included)
    objective_s: float  # the latency the group's requests should finish within
    service_rate: float | None = None  # requests/s one replica finishes; None: unknown
    target_ongoing_requests: float = 1.0  # one replica's load when the rate is unknown

    @property
    def backlog(self) -> float:
        return max(0.0, self.queued) + max(0.0, self.running)


@dataclass(frozen=True)
class AllocatorSettings:
    pool_cpus: float  # the CPUs all groups' replicas may reserve together
    busy_fraction: float = 0.5  # the part of the objective a request may spend waiting
    slack_fraction: float = 0.2  # spare a replica only if the wait stays under this part
    upscale_delay_s: float = 0.5
    downscale_delay_s: float = 30.0
    reclaim_delay_s: float = 5.0
    max_threads: int | None = None  # threads one replica may get; None: pool_cpus


@dataclass(frozen=True)
class GroupDecision:
    """What the allocator decided for one group, and why: values a metrics module exports."""

    group: str
    replicas: int
    threads: int
    action: str  # hold, up, down, bounds, gave, took
    predicted_wait_s: float
    pressure: float
    rate_measured: bool
    reason: str


@dataclass(frozen=True)
class Allocation:
    decisions: dict[str, GroupDecision]
    state: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class _Group:
    """A group's load, its view this tick, and the decision being built."""

    load: GroupLoad
    wait_s: float
    pressure: float
    slack: bool
    busy_since: float | None
    slack_since: float | None
    replicas: int
    action: str = "hold"
    reason: str = ""


def replica_rate(load: GroupLoad, settings: AllocatorSettings) -> float:
    """Requests/s one replica finishes: measured, else target_ongoing_requests per waiting
    budget (busy_fraction x objective)."""
    if load.service_rate is not None and load.service_rate > 0:
        return load.service_rate
    return load.target_ongoing_requests / (settings.busy_fraction * load.objective_s)


def predicted_wait(backlog: float, replicas: int, rate: float) -> float:
    """Seconds to drain `backlog` on `replicas` replicas; inf when work has no replica."""
    if backlog <= 0:
        return 0.0
    return math.inf if replicas <= 0 else backlog / (replicas * rate)


def allocate(groups: Sequence[GroupLoad], settings: AllocatorSettings, now: float,
             state: Mapping[str, Mapping[str, float | None]] | None = None) -> Allocation:
    """Every group's replicas and threads for this tick, with reasons, and the state to keep."""
    state = state or {}
    views = {load.name: _view(load, settings, now, state.get(load.name, {}))
             for load in sorted(groups, key=lambda g: g.name)}
    _apply_bounds(views)
    free = settings.pool_cpus - sum(v.replicas * v.load.cpus_per_replica for v in views.values())
    free = _release_idle(views, settings, now, free)
    _grant_busy(views, settings, now, free)
    _note_quiet_holds(views)
    threads = _threads(views, settings)
    decisions = {name: GroupDecision(
        group=name, replicas=v.replicas, threads=threads[name], action=v.action,
        predicted_wait_s=v.wait_s, pressure=v.pressure,
        rate_measured=bool(v.load.service_rate), reason=f"{name}: {v.reason}")
        for name, v in views.items()}
    new_state = {name: {key: since for key, since in
                        ((BUSY_SINCE, v.busy_since), (SLACK_SINCE, v.slack_since))
                        if since is not None} for name, v in views.items()}
    return Allocation(decisions, new_state)


def _view(load: GroupLoad, settings: AllocatorSettings, now: float,
          state: Mapping[str, float | None]) -> _Group:
    rate = replica_rate(load, settings)
    wait = predicted_wait(load.backlog, load.running_replicas, rate)
    pressure = wait / (settings.busy_fraction * load.objective_s)
    fewer = predicted_wait(load.backlog, load.running_replicas - 1, rate)
    slack = (load.target_replicas > load.min_replicas
             and load.running_replicas >= load.target_replicas
             and fewer < settings.slack_fraction * load.objective_s)
    busy = pressure > 1 + _EPS
    return _Group(
        load=load, wait_s=wait, pressure=pressure, slack=slack,
        busy_since=_since(state.get(BUSY_SINCE), busy, now),
        slack_since=_since(state.get(SLACK_SINCE), slack, now),
        replicas=load.target_replicas,
        reason=_load_words(load, wait, settings))


def _since(previous: float | None, holds: bool, now: float) -> float | None:
    if not holds:
        return None
    return previous if previous is not None else now


def _load_words(load: GroupLoad, wait: float, settings: AllocatorSettings) -> str:
    rate = "measured" if load.service_rate else "assumed"
    return (f"wait {wait:.2f} s ({load.backlog:g} requests on {load.running_replicas} "
            f"replicas, rate {rate}) vs {settings.busy_fraction:g} x {load.objective_s:g} s")


def _elapsed(since: float | None, now: float, delay_s: float) -> bool:
    return since is not None and now - since + _EPS >= delay_s


def _apply_bounds(views: dict[str, _Group]) -> None:
    for v in views.values():
        bounded = min(max(v.replicas, v.load.min_replicas), v.load.max_replicas)
        if bounded != v.replicas:
            v.reason += f"; {v.replicas} -> {bounded}: outside min..max"
            v.replicas, v.action = bounded, "bounds"


def _release_idle(views: dict[str, _Group], settings: AllocatorSettings, now: float,
                  free: float) -> float:
    for v in views.values():
        if v.action == "hold" and _elapsed(v.slack_since, now, settings.downscale_delay_s):
            v.replicas -= 1
            v.action, v.slack_since = "down", now
            v.reason += (f"; slack for {settings.downscale_delay_s:g} s: one replica back to "
                         f"the free CPUs")
            free += v.load.cpus_per_replica
    return free


def _grant_busy(views: dict[str, _Group], settings: AllocatorSettings, now: float,
                free: float) -> None:
    busiest_first = sorted((v for v in views.values() if v.busy_since is not None),
                           key=lambda v: (-v.pressure, v.load.name))
    for v in busiest_first:
        why_not = _why_not_grow(v, settings, now)
        if why_not:
            v.reason += f"; busy, {why_not}"
            continue
        need = v.load.cpus_per_replica
        donor = None if free + _EPS >= need else _donor(views, settings, now, need - free)
        if free + _EPS < need and donor is None:
            v.reason += (f"; busy, holds: {free:g} CPUs free of {need:g} needed and no group "
                         f"with slack")
            continue
        if donor is not None:
            donor.replicas -= 1
            donor.action, donor.slack_since = "gave", now
            donor.reason += f"; slack: one replica to {v.load.name}"
            free += donor.load.cpus_per_replica
            v.action, source = "took", f"from {donor.load.name}"
        else:
            v.action, source = "up", "from the free CPUs"
        v.replicas += 1
        v.busy_since = now  # the next replica waits for this one to show in the load
        free -= need
        v.reason += f"; busy for {settings.upscale_delay_s:g} s: one replica {source}"


def _note_quiet_holds(views: dict[str, _Group]) -> None:
    for v in views.values():
        if v.action == "hold" and v.busy_since is None:
            v.reason += "; slack, holds" if v.slack else "; within its objective, holds"


def _why_not_grow(v: _Group, settings: AllocatorSettings, now: float) -> str:
    if v.action != "hold":
        return f"already changed ({v.action})"
    if v.replicas >= v.load.max_replicas:
        return f"at max {v.load.max_replicas}"
    if v.load.running_replicas < v.load.target_replicas:
        return "a replica it was given is still starting"
    if not _elapsed(v.busy_since, now, settings.upscale_delay_s):
        waited = now - v.busy_since if v.busy_since is not None else 0.0
        return f"waits: {waited:g} of {settings.upscale_delay_s:g} s"
    return ""


def _donor(views: dict[str, _Group], settings: AllocatorSettings, now: float,
           short: float) -> _Group | None:
    """The group with the most slack that can give a replica covering `short` CPUs."""
    candidates = [v for v in views.values()
                  if v.action == "hold" and v.slack and v.replicas > v.load.min_replicas
                  and v.load.cpus_per_replica + _EPS >= short
                  and _elapsed(v.slack_since, now, settings.reclaim_delay_s)]
    return min(candidates, key=lambda v: (v.pressure, v.load.name), default=None)


def _threads(views: dict[str, _Group], settings: AllocatorSettings) -> dict[str, int]:
    """Threads per replica: the replicas of groups with requests share the pool's CPUs; one
    replica alone with work on a 2-CPU pool gets 2."""
    cap = settings.max_threads or max(1, int(settings.pool_cpus + _EPS))
    working = sum(v.replicas for v in views.values() if v.load.backlog > 0)
    share = int(settings.pool_cpus / working + _EPS) if working else 0
    threads = {}
    for name, v in views.items():
        base = max(1, int(v.load.cpus_per_replica + _EPS))
        threads[name] = min(cap, max(base, share)) if v.load.backlog > 0 else base
    return threads
