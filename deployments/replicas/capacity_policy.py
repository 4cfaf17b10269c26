"""Serve's application-level autoscaling policy, over the capacity allocator
(deployments/replicas/capacity_allocator.py): one decision for all replica groups of the app.

Serve calls it on its controller every control-loop tick with one AutoscalingContext per
deployment that has an autoscaling_config, keyed by DeploymentID, and takes back the replica
count and the policy_state of each. It is named in the Serve config beside the app, not in
the builder's args:

    applications:
      - name: mmserve
        autoscaling_policy:
          policy_function: deployments.replicas.capacity_policy:CapacityPolicy
          policy_kwargs:
            pool_cpus: 2
            groups:   # deployment name: its group, objective, CPUs per replica
              TextGenerator: {group: text, objective_s: 2, cpus_per_replica: 0.5}
              ImageEmbedder: {group: vision, objective_s: 2, cpus_per_replica: 0.5}
              SpeechTranscriber: {group: audio, objective_s: 15, cpus_per_replica: 0.5}
            upscale_delay_s: 0.5
            downscale_delay_s: 30

Each group's deployment needs an autoscaling_config (min/max; Serve passes only those) with
upscale_delay_s and downscale_delay_s 0: Serve applies a deployment's own delays to the app
policy's answer too, and the allocator keeps its delays itself. A deployment not in `groups`
(the ingress) keeps Serve's default policy. A replica that reports `service_rate` (items/s it
finishes, deployments/replicas/autoscaling_stats.py) from `record_autoscaling_stats` gives its
group a measured rate; without it the allocator assumes target_ongoing_requests per waiting
budget. deployments/replicas/serve_options.py writes all of this from the app's config
(`capacity:`).

`pool_cpus` None reads the pool from the cluster: its CPUs (ray.cluster_resources(), asked
from the controller every POOL_REFRESH_S) less `reserved_cpus` (the ingress's). With `metrics`
each decision is exported as gauges from the controller (DecisionGauges), beside Serve's own
ray_serve_autoscaling_* gauges, which the controller exports the same way.

What it cannot do: change threads (Serve takes only replica counts; the decided threads are
logged and kept in `last` for the replicas to be told another way); see where replicas land
(the pool is one number, so threads assume the pool is one node); move a replica in one step
(the giving group's replica drains while the taker's new one waits for its CPUs); keep state
across a redeploy or a controller restart (Serve starts the app policy afresh then).

Stdlib only, and of this project the allocator alone: Serve pickles this module by value for
its controller, which cannot import this checkout, and the allocator travels with it.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from typing import Any

from deployments.replicas import capacity_allocator
from deployments.replicas.capacity_allocator import (
    Allocation,
    AllocatorSettings,
    GroupLoad,
    allocate,
)

SERVICE_RATE_METRIC = "service_rate"  # items/s, from a replica's record_autoscaling_stats
POOL_REFRESH_S = 30.0  # how often a pool taken from the cluster is read again
logger = logging.getLogger("ray.serve")


def _ship_allocator_with_this_module() -> None:
    """Serve registers only the policy's own module to be pickled by value; the allocator it
    calls must be too. Ray is loaded wherever Serve pickles a policy, never in the unit tier."""
    if "ray" in sys.modules:
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(capacity_allocator)


_ship_allocator_with_this_module()


def serve_default_policy(ctx: Any) -> tuple[float, dict[str, Any]]:
    """Serve's default policy, for the deployments the allocator does not own."""
    from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy

    return replica_queue_length_autoscaling_policy(ctx)


def service_rate(ctx: Any) -> float | None:
    """The mean rate the group's replicas report, or None where none does."""
    per_replica = (ctx.aggregated_metrics or {}).get(SERVICE_RATE_METRIC) or {}
    rates = [rate for rate in per_replica.values() if rate > 0]
    return sum(rates) / len(rates) if rates else None


def group_load(ctx: Any, group: str, objective_s: float, cpus_per_replica: float) -> GroupLoad:
    """One deployment's AutoscalingContext as the allocator's view of its group."""
    queued = ctx.total_queued_requests or 0.0
    target = getattr(ctx.config, "target_ongoing_requests", None) or 1.0
    return GroupLoad(
        name=group, target_replicas=ctx.target_num_replicas,
        running_replicas=ctx.current_num_replicas,
        min_replicas=ctx.capacity_adjusted_min_replicas,
        max_replicas=ctx.capacity_adjusted_max_replicas, cpus_per_replica=cpus_per_replica,
        queued=queued, running=max(0.0, ctx.total_num_requests - queued),
        objective_s=objective_s, service_rate=service_rate(ctx),
        target_ongoing_requests=target)


def cluster_cpus() -> float | None:
    """The Ray cluster's CPUs as Serve's controller sees them; None where Ray cannot say."""
    import ray

    try:
        return float(ray.cluster_resources().get("CPU", 0.0))
    except Exception as error:  # the policy must answer every tick whatever the GCS does
        logger.warning("capacity: cannot read the cluster's CPUs (%s)", error)
        return None


class DecisionGauges:
    """Each group's decision as Ray metrics (exported as ray_mmserve_capacity_*), tagged with
    the application and the group: replicas, threads, predicted wait, pressure, whether the
    rate was measured, and a count of the moves by action."""

    GAUGES = {
        "replicas": ("mmserve_capacity_replicas", "Replicas the capacity allocator decided."),
        "threads": ("mmserve_capacity_threads",
                    "Threads per replica the capacity allocator decided (not applied)."),
        "predicted_wait_s": ("mmserve_capacity_predicted_wait_seconds",
                             "The group's predicted queue wait."),
        "pressure": ("mmserve_capacity_pressure",
                     "Predicted wait over busy_fraction x objective; busy above 1."),
        "rate_measured": ("mmserve_capacity_rate_measured",
                          "1 when the group's replicas reported their service rate."),
    }
    TAGS = ("application", "group")

    def __init__(self) -> None:
        self.gauges = {field: ray_metric("gauge", name, text, self.TAGS)
                       for field, (name, text) in self.GAUGES.items()}
        self.moves = ray_metric("counter", "mmserve_capacity_moves",
                                "Decisions that changed a group's replicas, by action.",
                                (*self.TAGS, "action"))

    def export(self, allocation: Allocation, application: str) -> None:
        for group, decision in allocation.decisions.items():
            tags = {"application": application, "group": group}
            for field, gauge in self.gauges.items():
                gauge.set(float(getattr(decision, field)), tags=tags)
            if decision.action != "hold":
                self.moves.inc(1, tags={**tags, "action": decision.action})


def ray_metric(kind: str, name: str, description: str, tag_keys: tuple[str, ...]) -> Any:
    """A Ray metric made in the process that runs the policy (Serve's controller)."""
    from ray.util import metrics

    cls = metrics.Gauge if kind == "gauge" else metrics.Counter
    return cls(name, description=description, tag_keys=tag_keys)


class CapacityPolicy:
    """What Serve calls: built once per app config with the policy_kwargs, then called with
    each tick's contexts. `last` is the latest allocation."""

    def __init__(self, pool_cpus: float | None, groups: dict[str, dict[str, Any]],
                 reserved_cpus: float = 0.0, metrics: bool = False,
                 **settings: float) -> None:
        self.groups = {name: {"group": str(spec["group"]),
                              "objective_s": float(spec["objective_s"]),
                              "cpus_per_replica": float(spec["cpus_per_replica"])}
                       for name, spec in groups.items()}
        self.pool_from_cluster = pool_cpus is None
        self.reserved_cpus = float(reserved_cpus)
        self.settings = AllocatorSettings(pool_cpus=float(pool_cpus or 0.0), **settings)
        self.last: Allocation | None = None
        self.export_metrics = metrics
        self.gauges: DecisionGauges | None = None  # made at the first tick, in the controller
        self._logged: dict[str, tuple[int, int, bool]] = {}
        self._pool_read_at: float | None = None

    def __call__(self, contexts: dict[Any, Any]) -> tuple[dict[Any, float], dict[Any, dict]]:
        ours = {dep: ctx for dep, ctx in contexts.items() if ctx.deployment_name in self.groups}
        group_of = {dep: self.groups[ctx.deployment_name]["group"] for dep, ctx in ours.items()}
        loads = [group_load(ctx, **self.groups[ctx.deployment_name]) for ctx in ours.values()]
        state = {group_of[dep]: ctx.policy_state or {} for dep, ctx in ours.items()}
        now = next((ctx.current_time for ctx in ours.values() if ctx.current_time), None)
        now = now or time.time()
        self._read_pool(now, loads)
        self.last = allocate(loads, self.settings, now, state)
        self._log(self.last)
        if self.export_metrics and ours:
            self.gauges = self.gauges or DecisionGauges()
            self.gauges.export(self.last, str(next(iter(ours.values())).app_name))
        decisions: dict[Any, float] = {
            dep: self.last.decisions[group].replicas for dep, group in group_of.items()}
        states = {dep: dict(self.last.state[group]) for dep, group in group_of.items()}
        for dep, ctx in contexts.items():
            if dep not in ours:
                decisions[dep], states[dep] = serve_default_policy(ctx)
        return decisions, states

    def _read_pool(self, now: float, loads: list[GroupLoad]) -> None:
        """With the pool from the cluster: its CPUs less the reserved, read again every
        POOL_REFRESH_S; until a read succeeds, the CPUs the groups hold (none to grant)."""
        if not self.pool_from_cluster:
            return
        if self._pool_read_at is not None and now - self._pool_read_at < POOL_REFRESH_S:
            return
        first_read = self._pool_read_at is None
        self._pool_read_at = now
        cpus = cluster_cpus()
        if cpus is not None:
            pool = max(0.0, cpus - self.reserved_cpus)
        elif first_read:
            pool = sum(load.target_replicas * load.cpus_per_replica for load in loads)
        else:
            return  # keep the last pool read
        if pool != self.settings.pool_cpus:
            logger.info("capacity: a pool of %g CPUs (the cluster's %s less %g reserved)",
                        pool, "unknown" if cpus is None else f"{cpus:g}", self.reserved_cpus)
        self.settings = replace(self.settings, pool_cpus=pool)

    def _log(self, allocation: Allocation) -> None:
        """A line per group when its counts change or its load crosses the busy line, not one
        per tick."""
        for group, decision in allocation.decisions.items():
            key = (decision.replicas, decision.threads, decision.pressure > 1)
            if self._logged.get(group) != key:
                self._logged[group] = key
                logger.info("capacity: %s -> %d replicas x %d threads (%s)", decision.reason,
                            decision.replicas, decision.threads, decision.action)
