"""A local Ray head node that this process starts and, on stop, cleans up by itself.

`ray stop` ends every Ray process on the machine, including clusters other people (or other
test runs) started. This starts `ray start --head --block` in its own process group, with its
own temp dir and ports, and stops exactly that group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

_PORT_NAMES = ("gcs", "dashboard", "metrics", "node_manager", "object_manager",
               "client_server", "dashboard_agent_listen", "dashboard_agent_grpc",
               "runtime_env_agent", "http")
WORKER_PORT_SPAN = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports() -> dict[str, int]:
    """A distinct free port for every service a head node opens."""
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(_PORT_NAMES):
        ports = {name: free_port() for name in _PORT_NAMES}
    return ports


@dataclass
class LocalRay:
    num_cpus: float = 2
    ports: dict[str, int] = field(default_factory=free_ports)
    temp_dir: str | None = None
    resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    _own_temp_dir: bool = False

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['gcs']}"

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    def start(self, timeout_s: float = 120) -> LocalRay:
        if self.temp_dir is None:
            # Short on purpose: Ray's unix socket paths must fit in 107 bytes.
            self.temp_dir = tempfile.mkdtemp(prefix="mmray-", dir="/tmp")
            self._own_temp_dir = True
        # Ray 2.60 turns token auth on for `ray start` whenever ~/.ray/auth_token exists (any
        # local `ray.init()` writes one); this private head stays off unless asked otherwise.
        env = {"RAY_AUTH_MODE": "disabled", **os.environ, **self.env}
        self.process = subprocess.Popen(
            self._command(), start_new_session=True, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self._wait_until_up(timeout_s)
        return self

    def _command(self) -> list[str]:
        p = self.ports
        # Below the kernel's ephemeral range, where free_ports() picks the service ports.
        worker_low = 20000 + (p["gcs"] % 10000)
        command = [
            str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
            "--node-ip-address", "127.0.0.1", "--port", str(p["gcs"]),
            "--num-cpus", str(self.num_cpus), "--temp-dir", self.temp_dir,
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(p["dashboard"]), "--metrics-export-port", str(p["metrics"]),
            "--node-manager-port", str(p["node_manager"]),
            "--object-manager-port", str(p["object_manager"]),
            "--ray-client-server-port", str(p["client_server"]),
            "--dashboard-agent-listen-port", str(p["dashboard_agent_listen"]),
            "--dashboard-agent-grpc-port", str(p["dashboard_agent_grpc"]),
            "--runtime-env-agent-port", str(p["runtime_env_agent"]),
            "--min-worker-port", str(worker_low),
            "--max-worker-port", str(worker_low + WORKER_PORT_SPAN),
            "--disable-usage-stats",
        ]
        if self.resources:
            import json

            command += ["--resources", json.dumps(self.resources)]
        return command

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"ray start exited with {self.process.returncode}: {error}")
            if _port_open(self.ports["gcs"]) and _port_open(self.ports["dashboard"]):
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the Ray head did not come up within {timeout_s} s")

    def stop(self) -> None:
        """Ends this head's whole process group, then removes its temp dir if it made it."""
        if self.process is not None and self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(self.process.pid, signal.SIGKILL)
        self.process = None
        if self._own_temp_dir and self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
