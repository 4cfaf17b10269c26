"""The local heterogeneous Ray cluster: a head and the worker nodes of each node group of
cluster/local-cluster.yaml, all on this machine, each a real Ray node with its own ports, temp
dir and process group, advertising its group's resources (accelerator_type:X, neuron_cores...).

    python cluster/local.py up        # starts it in the background (make cluster-up)
    python cluster/local.py deploy    # serve deploy of a profile, mixed-local by default
    python cluster/local.py status    # nodes, their groups and resources; where replicas run
    python cluster/local.py down      # stops exactly what `up` started (make cluster-down)

`deploy` is `serve deploy cluster/profiles/mixed-local.yaml -a <this cluster's dashboard>`;
any Serve CLI command works against the dashboard as on any Ray cluster, given the Ray token
every node runs with (cluster/local_ray.py): RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH in its
environment. `deploy` and `status` set them for themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from cluster.front_haproxy import (  # noqa: E402
    CHECK_INTERVAL_S,
    FALL_AFTER,
    HEALTH_PATH,
    FrontHAProxy,
    ProxyServer,
    stop_front,
)
from cluster.gcs_redis import (  # noqa: E402
    GcsRedis,
    GcsRedisSpec,
    every_node_env,
    parse_gcs_redis,
)
from cluster.gcs_redis import stop_from_state as stop_gcs_redis  # noqa: E402
from cluster.local_ray import (  # noqa: E402
    WORKER_PORT_BASE,
    WORKER_PORT_SPAN,
    LocalRay,
    LocalRayWorker,
    authorize_this_process,
    ensure_ray_token,
    free_ports,
    stop_process_group,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO / "cluster" / "local-cluster.yaml"
DEFAULT_STATE = Path(tempfile.gettempdir()) / "mmserve-local-cluster.json"
# `make cluster-up` uses Ray's usual ports, so `serve deploy` and the dashboard need no flags.
STANDARD_PORTS = {"gcs": 6379, "dashboard": 8265, "metrics": 8080}
# `ray start --block` lets its GCS and monitor linger for ~30 s after SIGTERM; a local cluster
# being torn down has nothing to drain, so what is left after this is killed.
STOP_GRACE_S = 10
# Ray 2.60: a worker node's Serve proxy binds this port instead of http_options.port (the
# head's proxy keeps that one): proxies of several nodes on one machine need a port each.
WORKER_PROXY_PORT_ENV = "RAY_SERVE_WORKER_PROXY_HTTP_PORT"
# Serve's proxies set SO_REUSEPORT by default: two of them on one port would silently share it.
# Off, a proxy whose port is taken fails to start, and says so.
NO_SHARED_PROXY_PORT_ENV = {"SERVE_SOCKET_REUSE_PORT_ENABLED": "0"}


@dataclass(frozen=True)
class NodeGroup:
    name: str
    num_cpus: int
    resources: dict[str, float] = field(default_factory=dict)
    nodes: int = 1  # identical nodes of this group, each a raylet of its own


@dataclass(frozen=True)
class IngressSpec:
    """Where clients send traffic (HAProxy, cluster/front_haproxy.py) and the head's Serve
    proxy behind it: the profile's http_options.port. Worker nodes' proxies take the ports
    after `proxy_port`."""

    port: int = 8000
    proxy_port: int = 8001


@dataclass(frozen=True)
class ClusterSpec:
    head: NodeGroup
    workers: tuple[NodeGroup, ...]
    object_store_memory: int | None = None
    ingress: IngressSpec = IngressSpec()
    gcs_redis: GcsRedisSpec | None = None  # GCS fault tolerance (cluster/gcs_redis.py)

    def worker_nodes(self) -> list[tuple[NodeGroup, int]]:
        """Every worker node to start: its group and its index within the group (1, 2...)."""
        return [(group, index) for group in self.workers
                for index in range(1, group.nodes + 1)]


def load_spec(path: Path = DEFAULT_SPEC) -> ClusterSpec:
    data = yaml.safe_load(Path(path).read_text())
    head = data.get("head", {})
    workers = tuple(_node_group(w) for w in data.get("workers", []))
    ingress = IngressSpec(**data.get("ingress", {}))
    return ClusterSpec(NodeGroup("head", int(head.get("num_cpus", 0)),
                                 dict(head.get("resources", {}))),
                       workers, data.get("object_store_memory"), ingress,
                       parse_gcs_redis(data.get("gcs_redis")))


def _node_group(entry: dict) -> NodeGroup:
    nodes = int(entry.get("nodes", 1))
    if nodes < 1:
        raise ValueError(f"node group {entry['name']!r} needs at least 1 node, not {nodes}")
    return NodeGroup(entry["name"], int(entry["num_cpus"]), dict(entry.get("resources", {})),
                     nodes)


def node_name(group: NodeGroup, index: int) -> str:
    """What HAProxy and `status` call a node: its group, numbered when the group has several."""
    return group.name if group.nodes == 1 else f"{group.name}-{index}"


def proxy_ports(count: int, first: int | None) -> list[int]:
    """The Serve proxy port of each node, the head's first: `first` and the ports after it,
    or free ports when `first` is None."""
    if first is None:
        return list(free_ports(tuple(f"proxy{i}" for i in range(count))).values())
    return list(range(first, first + count))


class LocalCluster:
    """Starts the head, then the workers side by side, and waits until all are in the GCS."""

    def __init__(self, spec: ClusterSpec, env: dict[str, str] | None = None,
                 head_ports: dict[str, int] | None = None,
                 ingress: IngressSpec | None = None) -> None:
        """`ingress`: the ports of `spec.ingress` (what `make cluster-up` uses), or, None,
        free ports for the front HAProxy and every node's proxy."""
        self.spec = spec
        self.env = {"PYTHONPATH": _with_repo(os.environ.get("PYTHONPATH", "")),
                    **NO_SHARED_PROXY_PORT_ENV,
                    **(every_node_env(spec.gcs_redis) if spec.gcs_redis else {}), **(env or {})}
        self.head_ports = head_ports or {}
        self.gcs_redis: GcsRedis | None = None
        self.head = self._new_head()
        self.workers: list[LocalRayWorker] = []
        self.ingress_port = ingress.port if ingress else free_ports(("front",))["front"]
        self.proxy_ports = proxy_ports(1 + len(spec.worker_nodes()),
                                       ingress.proxy_port if ingress else None)
        self.front: FrontHAProxy | None = None

    def _new_head(self, ports: dict[str, int] | None = None) -> LocalRay:
        head = LocalRay(num_cpus=self.spec.head.num_cpus, resources=self.spec.head.resources,
                        env=self.env, node_group=self.spec.head.name,
                        ports=ports or {**free_ports(), **self.head_ports},
                        object_store_memory=self.spec.object_store_memory,
                        stop_grace_s=STOP_GRACE_S)
        if self.gcs_redis is not None:
            head.env = {**head.env, **self.gcs_redis.head_env()}
            head.redis_password_file = (str(self.gcs_redis.password_file)
                                        if self.gcs_redis.password_file else None)
        return head

    @property
    def address(self) -> str:
        return self.head.address

    @property
    def dashboard_url(self) -> str:
        return self.head.dashboard_url

    @property
    def nodes(self) -> list[LocalRay]:
        return [self.head, *self.workers]

    def start(self, timeout_s: float = 180, attempts: int = 3) -> LocalCluster:
        """Free ports are picked before `ray start` binds them, so another process on the
        machine can take one in between: then the node fails to start, and the whole cluster
        is started again on fresh ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start(timeout_s)
            except RuntimeError as error:
                if attempt == attempts:
                    raise
                print(f"local cluster start failed ({str(error)[-300:]}); retrying",
                      file=sys.stderr)
                self.head = self._new_head()
        raise AssertionError("unreachable")

    def _start(self, timeout_s: float) -> LocalCluster:
        if self.spec.gcs_redis is not None:
            # A fresh Redis each try: a head that failed to start may have left state in it.
            self._stop_gcs_redis()
            self.gcs_redis = GcsRedis.start(self.spec.gcs_redis)
            self.head = self._new_head(self.head.ports)
        nodes = self.spec.worker_nodes()
        ranges = _worker_port_ranges(self.head.ports["gcs"], 1 + len(nodes))
        self.head.worker_ports = ranges[0]
        self.head.start(timeout_s)
        self.workers = [
            LocalRayWorker(num_cpus=group.num_cpus, resources=group.resources,
                           env={**self.env, WORKER_PROXY_PORT_ENV: str(proxy_port)},
                           node_group=group.name, head_address=self.head.address,
                           object_store_memory=self.spec.object_store_memory,
                           worker_ports=ports, stop_grace_s=STOP_GRACE_S)
            for (group, _), ports, proxy_port in zip(nodes, ranges[1:], self.proxy_ports[1:])]
        try:
            with ThreadPoolExecutor(max(1, len(self.workers))) as pool:
                list(pool.map(lambda worker: worker.start(timeout_s), self.workers))
            self.wait_for_nodes(timeout_s)
            self.front = FrontHAProxy(self.ingress_port, self.proxy_servers()).start()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_nodes(self, timeout_s: float) -> None:
        from ray.util.state import list_nodes

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                alive = list_nodes(address=self.dashboard_url, filters=[("state", "=", "ALIVE")])
                if len(alive) >= len(self.nodes):
                    return
            except Exception:  # the dashboard's state API may still be starting
                pass
            time.sleep(1)
        raise TimeoutError(f"{len(self.nodes)} nodes did not all join within {timeout_s} s")

    def kill_head(self) -> None:
        """SIGKILL to the head's whole process group (`ray start`, its GCS, raylet, dashboard,
        the Serve controller and the head's proxy), as when its machine dies. The worker
        nodes and the Redis keep running."""
        os.killpg(self.head.process.pid, signal.SIGKILL)
        self.head.process.wait()

    def restart_head(self, timeout_s: float = 180) -> None:
        """A new head on the killed one's ports: with GCS fault tolerance its GCS reloads the
        cluster from Redis, the worker nodes reconnect, and Ray restarts the Serve controller,
        which finds its app and replicas again."""
        if self.gcs_redis is None:
            raise RuntimeError("a head restarted without gcs_redis starts an empty cluster")
        worker_ports = self.head.worker_ports
        self.head.stop()  # its group is gone: this removes its temp dir
        self.head = self._new_head(self.head.ports)
        self.head.worker_ports = worker_ports
        self.head.start(timeout_s)

    @property
    def node_names(self) -> list[str]:
        return ["head", *(node_name(group, i) for group, i in self.spec.worker_nodes())]

    @property
    def ingress_url(self) -> str:
        """Where clients send traffic: HAProxy in front of every node's proxy."""
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def head_proxy_port(self) -> int:
        """The head's Serve proxy port: what the deployed config's http_options.port must be."""
        return self.proxy_ports[0]

    def proxy_servers(self) -> list[ProxyServer]:
        return [ProxyServer(name, port) for name, port in zip(self.node_names, self.proxy_ports)]

    def stop(self) -> None:
        """Every node at once: nothing needs to drain when the whole cluster goes."""
        if self.front is not None:
            self.front.stop()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes))
        self._stop_gcs_redis()

    def _stop_gcs_redis(self) -> None:
        if self.gcs_redis is not None:
            self.gcs_redis.stop()
            self.gcs_redis = None

    def state(self) -> dict:
        """What `down`, `deploy` and `status` need from another process."""
        return {"address": self.address, "dashboard": self.dashboard_url,
                "ingress": {"url": self.ingress_url, "haproxy_dir": self.front.directory,
                            "proxies": [{"node": s.name, "port": s.port}
                                        for s in self.proxy_servers()]},
                "nodes": [{"group": node.node_group, "name": name, "pid": node.process.pid,
                           "temp_dir": node.temp_dir}
                          for node, name in zip(self.nodes, self.node_names)],
                **({"gcs_redis": self.gcs_redis.state()} if self.gcs_redis else {})}


def stop_from_state(state: dict) -> list[str]:
    """Stops the front HAProxy and the nodes a state file lists; returns the nodes it
    stopped."""
    if state.get("ingress", {}).get("haproxy_dir"):
        stop_front(state["ingress"]["haproxy_dir"])
    with ThreadPoolExecutor(len(state["nodes"])) as pool:
        stopped = [group for group in pool.map(_stop_node, state["nodes"]) if group]
    if "gcs_redis" in state and stop_gcs_redis(state["gcs_redis"]):
        stopped.append("gcs redis")
    return stopped


def _stop_node(node: dict) -> str | None:
    stopped = None
    if _is_our_node(node["pid"], node["temp_dir"]):
        stop_process_group(node["pid"], STOP_GRACE_S)
        stopped = node.get("name", node["group"])
    shutil.rmtree(node["temp_dir"], ignore_errors=True)
    return stopped


def _is_our_node(pid: int, temp_dir: str) -> bool:
    """Guards against a recycled pid: the process must be `ray start` with our temp dir."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"start" in command and temp_dir.encode() in command


def _worker_port_ranges(anchor: int, count: int) -> list[tuple[int, int]]:
    """Disjoint worker-port ranges, one per node, below the ephemeral port range."""
    block = WORKER_PORT_SPAN * count
    base = WORKER_PORT_BASE + (anchor % (12000 // block)) * block
    return [(base + i * WORKER_PORT_SPAN, base + (i + 1) * WORKER_PORT_SPAN - 1)
            for i in range(count)]


def _port_taken(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _with_repo(pythonpath: str) -> str:
    parts = [p for p in pythonpath.split(os.pathsep) if p]
    return os.pathsep.join(parts if str(REPO) in parts else [str(REPO), *parts])


def up(spec_path: Path, state_path: Path) -> int:
    if state_path.exists():
        print(f"a local cluster is already up ({state_path}); run `down` first", file=sys.stderr)
        return 1
    spec = load_spec(spec_path)
    ports, ingress = STANDARD_PORTS, spec.ingress
    wanted = [*ports.values(), ingress.port,
              *proxy_ports(1 + len(spec.worker_nodes()), ingress.proxy_port)]
    busy = [str(port) for port in wanted if _port_taken(port)]
    if busy:
        print(f"ports {', '.join(busy)} are taken (another Ray?): using free ports instead",
              file=sys.stderr)
        ports, ingress = {}, None
    cluster = LocalCluster(spec, head_ports=ports, ingress=ingress).start()
    state = cluster.state()
    state_path.write_text(json.dumps(state, indent=2))
    address = "" if not busy else (f" -a {cluster.dashboard_url}, with http_options.port "
                                    f"{cluster.head_proxy_port}")
    print(f"Ray cluster up: {cluster.address} ({', '.join(cluster.node_names)})\n"
          f"dashboard {cluster.dashboard_url}\n"
          f"deploy:   python cluster/local.py deploy [--profile NAME]\n"
          f"      or: serve deploy cluster/profiles/mixed-local.yaml{address}\n"
          f"status:   python cluster/local.py status\n"
          f"stop:     python cluster/local.py down\n"
          f"{ingress_summary(state)}\n"
          f"Ray token auth: other drivers need RAY_AUTH_MODE=token "
          f"RAY_AUTH_TOKEN_PATH={ensure_ray_token()}")
    return 0


def ingress_summary(state: dict) -> str:
    """Where to send traffic, and what happens when an ingress node goes."""
    ingress = state["ingress"]
    proxies = ", ".join(f"{p['node']} :{p['port']}" for p in ingress["proxies"])
    return (f"traffic:  {ingress['url']} (HAProxy on 127.0.0.1), in front of the Serve proxy "
            f"of every node: {proxies}\n"
            f"failover: HAProxy checks each proxy's {HEALTH_PATH} every {CHECK_INTERVAL_S} s and "
            f"takes it out after {FALL_AFTER} failures; a request whose connection fails goes "
            f"to another proxy; with none up: 503, Retry-After")


def down(state_path: Path) -> int:
    if not state_path.exists():
        print("no local cluster is up", file=sys.stderr)
        return 0
    stopped = stop_from_state(json.loads(state_path.read_text()))
    state_path.unlink()
    print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return 0


def deploy(state_path: Path, profile: str) -> int:
    import subprocess

    from cluster.launch import profile_path

    if not state_path.exists():
        print("no local cluster is up; run `python cluster/local.py up`", file=sys.stderr)
        return 1
    state = json.loads(state_path.read_text())
    config = for_this_cluster(yaml.safe_load(profile_path(profile).read_text()), state)
    serve = Path(sys.executable).parent / "serve"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="mmserve-deploy-") as file:
        yaml.safe_dump(config, file, sort_keys=False)
        file.flush()
        return subprocess.call([str(serve), "deploy", file.name, "-a", state["dashboard"]])


def for_this_cluster(config: dict, state: dict) -> dict:
    """A profile with its HTTP port set to the head's proxy port: the one the front HAProxy
    expects (worker nodes' proxies take theirs from their node's environment)."""
    proxies = state.get("ingress", {}).get("proxies")
    if proxies:
        config = {**config, "http_options": {**config.get("http_options", {}),
                                             "port": proxies[0]["port"]}}
    return config


def status(state_path: Path) -> int:
    from cluster.placement import (
        format_nodes,
        format_proxies,
        format_replicas,
        node_table,
        proxy_health,
        replica_table,
        unplaceable_deployments,
    )

    if not state_path.exists():
        print("no local cluster is up", file=sys.stderr)
        return 1
    state = json.loads(state_path.read_text())
    dashboard = state["dashboard"]
    nodes = node_table(dashboard)
    print(format_nodes(nodes))
    print()
    print(format_replicas(replica_table(dashboard, nodes)))
    if "ingress" in state:
        print()
        print(format_proxies(state["ingress"]["url"], proxy_health(state["ingress"]["proxies"])))
    stuck = unplaceable_deployments(dashboard, nodes)
    if stuck:
        print()
        print("\n".join(["UNPLACEABLE", *stuck]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python cluster/local.py")
    parser.add_argument("action", choices=["up", "deploy", "status", "down"])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="node groups (YAML)")
    parser.add_argument("--profile", default="mixed-local", help="for deploy: name or path")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE)
    args = parser.parse_args(argv)
    if args.action == "up":
        return up(args.spec, args.state)
    if args.action == "down":
        return down(args.state)
    authorize_this_process()  # the Serve CLI and the state API it runs carry the Ray token
    if args.action == "deploy":
        return deploy(args.state, args.profile)
    return status(args.state)


if __name__ == "__main__":
    sys.exit(main())
