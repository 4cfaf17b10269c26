"""Where replicas run: every Serve replica with the node group and resources of its node, read
from Serve's state (the serve details behind `serve status`) and Ray's (the state API behind
`ray list nodes`), both through the head's dashboard."""

from __future__ import annotations

from dataclasses import dataclass

NODE_GROUP_LABEL = "ray.io/node-group"  # set by the cluster launcher, KubeRay and local.py
_HIDDEN = ("memory", "object_store_memory")


@dataclass(frozen=True)
class Node:
    node_id: str
    group: str
    alive: bool
    resources: dict[str, float]


@dataclass(frozen=True)
class Replica:
    app: str
    deployment: str
    replica_id: str
    state: str
    node: Node | None


def node_table(dashboard_url: str) -> dict[str, Node]:
    """Every node the GCS knows, by node id."""
    from ray.util.state import list_nodes

    return {n.node_id: Node(n.node_id, n.labels.get(NODE_GROUP_LABEL, "?"), n.state == "ALIVE",
                            dict(n.resources_total))
            for n in list_nodes(address=dashboard_url, detail=True)}


def replica_table(dashboard_url: str, nodes: dict[str, Node] | None = None) -> list[Replica]:
    """Every replica of every Serve application, with the node it was placed on."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    nodes = node_table(dashboard_url) if nodes is None else nodes
    details = ServeSubmissionClient(dashboard_url).get_serve_details()
    return [Replica(app_name, name, r["replica_id"], r["state"], nodes.get(r.get("node_id")))
            for app_name, app in details.get("applications", {}).items()
            for name, deployment in app["deployments"].items()
            for r in deployment["replicas"]]


def unplaceable_deployments(dashboard_url: str, nodes: dict[str, Node]) -> list[str]:
    """One line per deployment with no running replica that no live node could hold, naming
    what is missing (the same test the ingress's /readyz makes)."""
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    from deployments.core.placement_fit import describe_missing
    from serve_app.group_placement import unplaceable_groups

    alive = [n.resources for n in nodes.values() if n.alive]
    lines = []
    details = ServeSubmissionClient(dashboard_url).get_serve_details()
    for app_name, app in sorted(details.get("applications", {}).items()):
        deployments = app["deployments"]
        stuck = unplaceable_groups(deployments, {name: name for name in deployments}, alive)
        lines += [f"{app_name}/{name}: no replica, and none can be placed: no live node has "
                  f"{describe_missing(found.missing)}" for name, found in sorted(stuck.items())]
    return lines


def proxy_health(proxies: list[dict]) -> list[tuple[str, int, bool]]:
    """Each node's Serve proxy (`node`, `port`) and whether it answers its health route."""
    import urllib.request

    from cluster.front_haproxy import HEALTH_PATH

    found = []
    for proxy in proxies:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{proxy['port']}{HEALTH_PATH}",
                                        timeout=2) as response:
                up = response.status == 200
        except OSError:
            up = False
        found.append((proxy["node"], proxy["port"], up))
    return found


def format_proxies(url: str, health: list[tuple[str, int, bool]]) -> str:
    rows = [("INGRESS NODE", "PROXY", "STATE")]
    rows += [(node, f"127.0.0.1:{port}", "UP" if up else "DOWN") for node, port, up in health]
    return f"clients: {url} (HAProxy, in front of every UP proxy)\n" + _table(rows)


def placement_resources(resources: dict[str, float]) -> dict[str, float]:
    """What placement is decided by: CPUs, GPUs and custom resources, not memory or node ids."""
    return {k: v for k, v in sorted(resources.items())
            if k not in _HIDDEN and not k.startswith("node:")}


def format_nodes(nodes: dict[str, Node]) -> str:
    rows = [("NODE GROUP", "NODE", "STATE", "RESOURCES")]
    rows += [(n.group, n.node_id[:8], "ALIVE" if n.alive else "DEAD",
              _format_resources(placement_resources(n.resources)))
             for n in sorted(nodes.values(), key=lambda n: n.group)]
    return _table(rows)


def format_replicas(replicas: list[Replica]) -> str:
    rows = [("APP", "DEPLOYMENT", "REPLICA", "STATE", "NODE GROUP", "NODE")]
    rows += [(r.app, r.deployment, r.replica_id, r.state,
              r.node.group if r.node else "-", r.node.node_id[:8] if r.node else "-")
             for r in sorted(replicas, key=lambda r: (r.app, r.deployment, r.replica_id))]
    return _table(rows)


def _format_resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in resources.items()) or "-"


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)
