"""Reading profiles and cluster definitions the way Ray reads them, for the tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from cluster.deploy import PROFILE_DIRS, profile_path

REPO = Path(__file__).resolve().parent.parent
PROFILES = PROFILE_DIRS[0]  # cluster/profiles: the ones users deploy


def load_profile(name: str) -> dict:
    return yaml.safe_load(profile_path(name).read_text())


def built_deployments(config: dict) -> dict:
    """Serve's own build of the profile's application (what `serve deploy` hands the
    controller), without connecting to Ray or loading a model: {name: Deployment}."""
    from ray.serve._private.build_app import build_app as serve_build

    from serve_app.app import build_app

    app = config["applications"][0]
    built = serve_build(build_app(app["args"]), name=app["name"])
    return {deployment.name: deployment for deployment in built.deployments}


def replica_demand(ray_actor_options: dict) -> dict[str, float]:
    """What one replica asks the Ray scheduler for, as Ray computes it."""
    from ray._common.utils import resources_from_ray_options

    return {k: v for k, v in resources_from_ray_options(ray_actor_options).items() if v > 0}


def replicas_per_node(demand: dict[str, float], node: dict[str, float]) -> int:
    if any(node.get(resource, 0) < amount for resource, amount in demand.items()):
        return 0
    return int(min((node[resource] / amount for resource, amount in demand.items()),
                   default=1_000_000))


def capacity(demand: dict[str, float], node_types: dict[str, dict]) -> int:
    """Replicas of one deployment the cluster holds at its largest, with nothing else on it."""
    return sum(replicas_per_node(demand, node["resources"]) * node.get("max_workers", 0)
               for node in node_types.values())
