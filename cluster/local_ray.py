"""Local Ray nodes that this process starts and, on stop, cleans up by itself.

`ray stop` ends every Ray process on the machine, including clusters other people (or other
test runs) started. `LocalRay` starts `ray start --head --block` in its own process group, with
its own temp dir and ports, and stops exactly that group. `LocalRayWorker` is its counterpart
for a worker node joining a head: `ray start --address=HEAD --block`, again with its own ports,
temp dir and process group, advertising the resources of its node group.

Every node runs with Ray's token auth (Ray 2.60: `RAY_AUTH_MODE=token`): its GCS, raylet,
workers, agents and dashboard refuse a caller without the token, which is generated once into
$MMSERVE_HOME/ray-auth-token (mode 0600) and reaches each process through RAY_AUTH_TOKEN_PATH,
so ~/.ray/auth_token is never written. A `loopback_only` head (what `make serve` starts)
also binds every Ray socket it can to 127.0.0.1; see `LOOPBACK_ONLY_ENV`.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cluster.haproxy_ingress import haproxy_env, stop_haproxy
from cluster.run_dir import check_owned, new_run_dir

# Services every node opens, then those only a head opens.
NODE_PORT_NAMES = ("metrics", "node_manager", "object_manager", "dashboard_agent_listen",
                   "dashboard_agent_grpc", "runtime_env_agent")
HEAD_PORT_NAMES = ("gcs", "dashboard", "client_server", "http")
_PORT_NAMES = NODE_PORT_NAMES + HEAD_PORT_NAMES
WORKER_PORT_SPAN = 200
# Below the kernel's ephemeral range, where free_ports() picks the service ports.
WORKER_PORT_BASE = 20000
START_LOG = "ray-start.log"
# Serve's controller reconciles every deployment 10 times a second by default, which took 13% of
# one of this machine's two cores with the app idle; twice a second still reacts to a failed
# replica or an autoscaling decision well within a health-check period.
SERVE_TUNING_ENV = {"RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5"}
STARTED = "Ray runtime started."  # what `ray start` prints once the node is up
RAY_TOKEN_FILE = "ray-auth-token"
# On Linux, Ray resolves `--node-ip-address 127.0.0.1` to the machine's routable address, and its
# dashboard agent, runtime-env agent, client server and the metrics exporters (the agent's
# --metrics-export-port, the dashboard's 44227, the autoscaler's 44217: plain HTTP, no auth even
# with token auth on) then bind that address or 0.0.0.0. With this variable at 0 Ray treats the
# machine as a single-node cluster and uses 127.0.0.1 as the node's address: all of them, the
# GCS, the raylet and the object manager bind loopback. Ray's own gRPC servers of Serve replicas
# still bind all interfaces ([::]:0): token auth covers those. No worker node can join such a
# head, and every driver of it (ray.init, `serve run`) needs the variable too.
LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(names: tuple[str, ...] = _PORT_NAMES) -> dict[str, int]:
    """A distinct free port for every named service."""
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(names):
        ports = {name: free_port() for name in names}
    return ports


def default_worker_ports(anchor: int) -> tuple[int, int]:
    low = WORKER_PORT_BASE + (anchor % 10000)
    return low, low + WORKER_PORT_SPAN


@dataclass
class LocalRay:
    """A head node. `node_group` becomes the node's `ray.io/node-group` label, as the cluster
    launcher and KubeRay set it."""

    num_cpus: float = 2
    ports: dict[str, int] = field(default_factory=free_ports)
    temp_dir: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    node_group: str | None = None
    haproxy: bool = False  # Serve's HAProxy ingress (cluster/haproxy_ingress.py)
    # HAProxy's config and sockets: a private dir, short (see _new_haproxy_dir); made at start
    haproxy_dir: str | None = None
    # A private dir (cluster/run_dir.py) for the files Ray runs: the HAProxy wrapper of a
    # loopback-only head. Made under $MMSERVE_HOME/run at start when needed and not given.
    run_dir: str | None = None
    object_store_memory: int | None = None
    worker_ports: tuple[int, int] | None = None
    stop_grace_s: float = 10  # after SIGTERM, before SIGKILL (the GCS lingers ~30 s)
    token_auth: bool = True  # Ray's token auth, with the token of ray_token_path()
    loopback_only: bool = False  # a single-node head binding 127.0.0.1 (LOOPBACK_ONLY_ENV)
    # `ray start` gets SIGTERM (and cleans up its node) when the thread that started it ends,
    # even by SIGKILL: only for a head started from the main thread of a process it must not
    # outlive (`make serve`), never for a detached cluster.
    die_with_parent: bool = False
    # A head whose GCS keeps its state in Redis (cluster/gcs_redis.py, RAY_REDIS_ADDRESS in
    # `env`): the file holding that Redis's password.
    redis_password_file: str | None = None
    process: subprocess.Popen | None = None
    _own_temp_dir: bool = False
    _own_dirs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['gcs']}"

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard']}"

    def start(self, timeout_s: float = 120) -> LocalRay:
        if self.temp_dir is None:
            # Short on purpose: Ray's unix socket paths must fit in 107 bytes.
            self.temp_dir = tempfile.mkdtemp(prefix="mmray-", dir="/tmp")
            self._own_temp_dir = True
        Path(self.temp_dir).mkdir(parents=True, exist_ok=True)
        check_owned(Path(self.temp_dir))
        env = {**os.environ, **self.env, **self.driver_env()}
        if self.token_auth:
            env.pop("RAY_AUTH_TOKEN", None)  # it would win over the token file
            authorize_this_process()  # this process drives the cluster it starts
        if self.node_group:
            env["RAY_NODE_TYPE_NAME"] = self.node_group
        if self.haproxy:
            env.update(self._haproxy_env())
        # A log file, not a pipe: a detached node (cluster/local.py up) outlives this process.
        with open(self.start_log, "wb") as log:
            self.process = subprocess.Popen(
                self._command(), start_new_session=True, env=env, stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=dies_with_this_thread() if self.die_with_parent else None)
        self._wait_until_up(timeout_s)
        return self

    def driver_env(self) -> dict[str, str]:
        """What a process connecting to this node (ray.init, `serve run`, the Serve CLI, the
        dashboard's SDK) needs in its environment."""
        env = token_auth_env(ensure_ray_token()) if self.token_auth else {
            "RAY_AUTH_MODE": "disabled"}
        if self.loopback_only:
            env.update(LOOPBACK_ONLY_ENV)
        return env

    @property
    def start_log(self) -> Path:
        return Path(self.temp_dir) / START_LOG

    def _haproxy_env(self) -> dict[str, str]:
        stats, metrics = free_ports(("haproxy_stats", "haproxy_metrics")).values()
        if self.haproxy_dir is None:
            self.haproxy_dir = self._own(_new_haproxy_dir())
        wrapper_dir = None
        if self.loopback_only:
            if self.run_dir is None:
                self.run_dir = self._own(str(new_run_dir(mmserve_home(), "head-")))
            wrapper_dir = self.run_dir
        return haproxy_env(self.haproxy_dir, stats, metrics, wrapper_dir=wrapper_dir)

    def _own(self, directory: str) -> str:
        """Marks a directory this node made, to be removed when it stops."""
        self._own_dirs.append(directory)
        return directory

    def _command(self) -> list[str]:
        p = self.ports
        return [
            _ray_executable(), "start", "--head", "--block", "--port", str(p["gcs"]),
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(p["dashboard"]),
            "--ray-client-server-port", str(p["client_server"]),
            *self._node_args(default_worker_ports(p["gcs"])), *self._redis_password_args(),
        ]

    def _redis_password_args(self) -> list[str]:
        if self.redis_password_file is None:
            return []
        return ["--redis-password", Path(self.redis_password_file).read_text().strip()]

    def _node_args(self, default_worker_range: tuple[int, int]) -> list[str]:
        """Flags every node takes, head or worker."""
        p = self.ports
        low, high = self.worker_ports or default_worker_range
        args = [
            "--node-ip-address", "127.0.0.1", "--num-cpus", _whole(self.num_cpus),
            "--temp-dir", self.temp_dir, "--metrics-export-port", str(p["metrics"]),
            "--node-manager-port", str(p["node_manager"]),
            "--object-manager-port", str(p["object_manager"]),
            "--dashboard-agent-listen-port", str(p["dashboard_agent_listen"]),
            "--dashboard-agent-grpc-port", str(p["dashboard_agent_grpc"]),
            "--runtime-env-agent-port", str(p["runtime_env_agent"]),
            "--min-worker-port", str(low), "--max-worker-port", str(high),
            "--disable-usage-stats",
        ]
        if self.resources:
            args += ["--resources", json.dumps(self.resources)]
        if self.object_store_memory:
            args += ["--object-store-memory", str(self.object_store_memory)]
        return args

    def _is_up(self) -> bool:
        return self._started() and _port_open(self.ports["gcs"]) and _port_open(
            self.ports["dashboard"])

    def _started(self) -> bool:
        # An open port alone could belong to someone else who took it since free_ports().
        return STARTED in self.start_log.read_text(errors="replace")

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, error = self.process.returncode, self.start_log.read_text(
                    errors="replace")[-2000:]
                self.stop()  # what it started before failing, e.g. a GCS server
                raise RuntimeError(f"ray start exited with {code}: {error}")
            if self._is_up():
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the Ray node did not come up within {timeout_s} s")

    def stop(self) -> None:
        """Ends this node's whole process group, then removes its temp dir if it made it."""
        if self.process is not None:
            stop_process_group(self.process.pid, self.stop_grace_s, leader=self.process)
        if self.haproxy_dir:
            stop_haproxy(self.haproxy_dir)  # it leaves the node's process group
        self.process = None
        if self._own_temp_dir and self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        for directory in self._own_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._own_dirs.clear()


@dataclass
class LocalRayWorker(LocalRay):
    """A worker node that joins the head at `head_address` (host:gcs_port)."""

    head_address: str = ""
    ports: dict[str, int] = field(default_factory=lambda: free_ports(NODE_PORT_NAMES))

    @property
    def address(self) -> str:
        return self.head_address

    @property
    def http_port(self) -> int:
        raise AttributeError("a worker node serves no HTTP; the head's proxy does")

    @property
    def dashboard_url(self) -> str:
        raise AttributeError("a worker node has no dashboard; the head has")

    def _command(self) -> list[str]:
        if not self.head_address:
            raise ValueError("a worker node needs head_address")
        if self.loopback_only:
            raise ValueError("a loopback-only head takes no worker nodes; Ray refuses them")
        return [_ray_executable(), "start", "--address", self.head_address, "--block",
                *self._node_args(default_worker_ports(self.ports["node_manager"]))]

    def _is_up(self) -> bool:
        return self._started() and _port_open(self.ports["node_manager"])


def mmserve_home() -> Path:
    return Path(os.environ.get("MMSERVE_HOME") or Path.home() / ".cache" / "mmserve")


def _new_haproxy_dir() -> str:
    """A private (0700) dir of a random name under /tmp: short, as HAProxy's unix socket paths
    (this dir, a 56-character node id and the file name) must fit in 97 bytes."""
    return tempfile.mkdtemp(prefix="mmhap-", dir="/tmp")


def ray_token_path() -> Path:
    return mmserve_home() / RAY_TOKEN_FILE


def ensure_ray_token(path: Path | None = None) -> Path:
    """The token of local clusters, generated once: 256 random bits, readable by its owner only.

    Written to a private temp file and hard-linked into place, so processes starting clusters at
    the same time all end up with the one token that was linked first.
    """
    path = path or ray_token_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        temp = Path(temp_name)  # mode 0600 from mkstemp
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def token_auth_env(token_path: Path) -> dict[str, str]:
    """Ray's token auth for a process: Ray 2.60 reads the token from RAY_AUTH_TOKEN_PATH (after
    RAY_AUTH_TOKEN, before ~/.ray/auth_token), and checks it only with RAY_AUTH_MODE=token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


def authorize_this_process(token_path: Path | None = None) -> None:
    """Lets this process's own Ray calls (ray.init, the dashboard SDK, the state API) carry the
    token of local clusters; child processes inherit it."""
    wanted = token_auth_env(token_path or ensure_ray_token())
    if "RAY_AUTH_TOKEN" not in os.environ and all(
            os.environ.get(name) == value for name, value in wanted.items()):
        return
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(wanted)
    if "ray._raylet" in sys.modules:  # Ray caches the mode and the token once it has read them
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def dies_with_this_thread() -> Callable[[], None]:
    """A Popen preexec_fn: the child gets SIGTERM when the calling thread ends, however it ends
    (Linux's PR_SET_PDEATHSIG, kept across exec)."""
    return partial(_die_with_parent, os.getpid())


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGTERM when the parent thread ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def stop_process_group(pgid: int, grace_s: float = 30,
                       leader: subprocess.Popen | None = None) -> None:
    """SIGTERM to the group, then SIGKILL to whatever of it is left after `grace_s`.

    `leader` is the group's first process when it is our child: it is reaped here, since a
    zombie would keep the group looking alive.
    """
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    _signal_group(pgid, signal.SIGKILL)
    if leader is not None:
        leader.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _whole(count: float) -> str:
    if count != int(count):
        raise ValueError(f"a Ray node has a whole number of CPUs, not {count}")
    return str(int(count))


def _ray_executable() -> str:
    return str(Path(sys.executable).parent / "ray")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
