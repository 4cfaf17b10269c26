"""GCS fault tolerance for the local cluster: the head's GCS keeps the cluster's state (nodes,
actors, Serve's checkpoints) in a Redis, so a head that dies and starts again on the same ports
finds the app where it was, and the worker nodes' replicas and proxies serve meanwhile.

Ray's documented setup for `ray start` (ray-core/fault_tolerance/gcs): RAY_REDIS_ADDRESS in the
head's environment and `--redis-password` on its command line. Ray 2.60 has no other way in for
the password: it also puts it on gcs_server's command line, which every local user can read
(/proc/PID/cmdline). The Redis it protects listens on loopback only.

While the GCS is down every raylet and worker process keeps trying to reach it for
RAY_gcs_rpc_server_reconnect_timeout_s (60 s by default), then exits: the outage a cluster rides
out is that long, so every node gets it explicitly (KubeRay gives workers 600 s with GCS FT).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cluster.redis_server import RedisServer

LOCAL = "local"  # the address that asks the cluster to start a Redis of its own
RECONNECT_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
DEFAULT_RECONNECT_TIMEOUT_S = 600
# The environment variable naming a file that holds an external Redis's password.
PASSWORD_FILE_ENV = "MMSERVE_GCS_REDIS_PASSWORD_FILE"


@dataclass(frozen=True)
class GcsRedisSpec:
    """`gcs_redis:` of cluster/local-cluster.yaml."""

    # "local": a redis-server on 127.0.0.1 that the cluster starts, with a random password;
    # or HOST:PORT of a Redis that asks for the password in $MMSERVE_GCS_REDIS_PASSWORD_FILE.
    address: str = LOCAL
    reconnect_timeout_s: int = DEFAULT_RECONNECT_TIMEOUT_S


def parse_gcs_redis(entry: dict | str | None) -> GcsRedisSpec | None:
    """`gcs_redis: local`, `gcs_redis: {address: ..., reconnect_timeout_s: ...}`, or absent."""
    if entry is None:
        return None
    if isinstance(entry, str):
        entry = {"address": entry}
    unknown = set(entry) - {"address", "reconnect_timeout_s"}
    if unknown:
        raise ValueError(f"gcs_redis: unknown fields {sorted(unknown)}")
    spec = GcsRedisSpec(str(entry.get("address", LOCAL)),
                        int(entry.get("reconnect_timeout_s", DEFAULT_RECONNECT_TIMEOUT_S)))
    if spec.address != LOCAL and ":" not in spec.address:
        raise ValueError(f"gcs_redis address must be HOST:PORT or {LOCAL!r}, "
                         f"not {spec.address!r}")
    if spec.reconnect_timeout_s < 1:
        raise ValueError("gcs_redis reconnect_timeout_s must be at least 1 s")
    return spec


def every_node_env(spec: GcsRedisSpec) -> dict[str, str]:
    """What each node (its raylet, and every worker process through it) needs to outlive a GCS
    outage of up to the spec's timeout."""
    return {RECONNECT_TIMEOUT_ENV: str(spec.reconnect_timeout_s)}


def head_env(address: str, namespace: str) -> dict[str, str]:
    """The head's GCS stores its tables in the Redis at `address`, under a namespace of this
    cluster's own: a Redis shared with another cluster (or one run before) is never mistaken
    for this one's state."""
    return {"RAY_REDIS_ADDRESS": address, "RAY_external_storage_namespace": namespace}


@dataclass
class GcsRedis:
    """The Redis of one cluster: started here (address "local") or external."""

    address: str
    password_file: Path | None
    namespace: str
    server: RedisServer | None = None  # the local one, when this process started it

    @classmethod
    def start(cls, spec: GcsRedisSpec) -> GcsRedis:
        namespace = f"mmserve-{secrets.token_hex(6)}"
        if spec.address != LOCAL:
            password = os.environ.get(PASSWORD_FILE_ENV)
            return cls(spec.address, Path(password) if password else None, namespace)
        folder = Path(tempfile.mkdtemp(prefix="mmgcs-", dir="/tmp"))  # mode 0700
        server = RedisServer(folder, password=secrets.token_hex(24)).start()
        return cls(f"127.0.0.1:{server.port}", server.password_file(), namespace, server)

    def head_env(self) -> dict[str, str]:
        return head_env(self.address, self.namespace)

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
            shutil.rmtree(self.server.folder, ignore_errors=True)

    def state(self) -> dict:
        """What `down` needs to stop a local Redis from another process."""
        if self.server is None:
            return {"address": self.address}
        return {"address": self.address, "pid": self.server.process.pid,
                "folder": str(self.server.folder)}


def stop_from_state(state: dict) -> bool:
    """Stops the local Redis a state file names, if it is still the one `up` started."""
    if "pid" not in state:
        return False
    stopped = _is_our_redis(state["pid"], state["address"])
    if stopped:
        os.kill(state["pid"], signal.SIGKILL)
    shutil.rmtree(state["folder"], ignore_errors=True)
    return stopped


def _is_our_redis(pid: int, address: str) -> bool:
    """Guards against a recycled pid: redis-server with the state's port (redis rewrites its
    command line to "redis-server HOST:PORT")."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    port = address.rsplit(":", 1)[-1].encode()
    return b"redis-server" in command and port in command
