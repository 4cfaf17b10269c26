"""Whether a replica could be placed at all: what it asks for against what each live node has
in total (not what is free now: a busy node frees its resources, a missing one never comes).
Used by the ingress's readiness and by `make cluster-status`; stdlib only."""

from __future__ import annotations

from collections.abc import Iterable


def fits(required: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(name, 0) >= amount for name, amount in required.items() if amount > 0)


def missing_resources(required: dict[str, float],
                      nodes: Iterable[dict[str, float]]) -> dict[str, float]:
    """What one replica asks for that no live node could give it: {} when some node holds
    it; else the resources no node has enough of, or, when each is on some node but no node
    has them all, everything it asks for."""
    nodes = list(nodes)
    wanted = {name: amount for name, amount in required.items() if amount > 0}
    if any(fits(wanted, node) for node in nodes):
        return {}
    short = {name: amount for name, amount in wanted.items()
             if not any(node.get(name, 0) >= amount for node in nodes)}
    return short or wanted


def describe_missing(missing: dict[str, float]) -> str:
    """One phrase naming what no node has, e.g. `accelerator_type:A10G 0.001`."""
    return ", ".join(f"{name} {amount:g}" for name, amount in sorted(missing.items()))


def replica_demand(ray_actor_options: dict) -> dict[str, float]:
    """What a Serve replica with these actor options asks the scheduler for, as Ray 2.60
    computes it (ray._common.utils.resources_from_ray_options; Serve's default is 1 CPU)."""
    demand = dict(ray_actor_options.get("resources") or {})
    demand["CPU"] = ray_actor_options.get("num_cpus", 1)
    for option, resource in (("num_gpus", "GPU"), ("memory", "memory")):
        if ray_actor_options.get(option):
            demand[resource] = ray_actor_options[option]
    if ray_actor_options.get("accelerator_type"):
        demand[f"accelerator_type:{ray_actor_options['accelerator_type']}"] = 0.001
    return {name: amount for name, amount in demand.items() if amount}
