"""Ray Serve's high-throughput ingress: HAProxy in front of the ingress replicas, which serve
HTTP themselves (direct ingress), instead of the Python proxy actor relaying every request.

Ray enables it with environment variables read when Serve starts (`RAY_SERVE_ENABLE_HA_PROXY`,
`RAY_SERVE_THROUGHPUT_OPTIMIZED`). Its defaults put HAProxy's config, admin socket and state
under /tmp/haproxy-serve and its stats and metrics on ports 8404 and 9101, shared by every
cluster on the machine, and the HAProxy process outlives the Ray node that started it. Here each
cluster gets its own state dir and free ports, and `stop_haproxy` ends exactly its processes.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

HAPROXY_BINARY_NAME = "haproxy"
INGRESSES = ("proxy", "haproxy")  # Serve's Python proxy actor (Ray's default), or HAProxy


def uses_haproxy(ingress: str) -> bool:
    if ingress not in INGRESSES:
        raise ValueError(f"ingress must be one of {', '.join(INGRESSES)}, got {ingress!r}")
    return ingress == "haproxy"


def haproxy_env(state_dir: str, stats_port: int, metrics_port: int) -> dict[str, str]:
    """The environment of a Ray node whose Serve ingress is HAProxy, kept under `state_dir`."""
    state = Path(state_dir)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
    }


def haproxy_pids(state_dir: str, proc: Path = Path("/proc")) -> list[int]:
    """HAProxy processes whose command line names a file under `state_dir`."""
    prefix = str(Path(state_dir)) + os.sep
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(argv[0]).name == HAPROXY_BINARY_NAME and any(
                arg.startswith(prefix) for arg in argv[1:]):
            found.append(int(entry.name))
    return found


def stop_haproxy(state_dir: str) -> None:
    for pid in haproxy_pids(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
