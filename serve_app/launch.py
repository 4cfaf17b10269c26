"""`make serve`: a local Ray head (dashboard on 127.0.0.1:8265, Prometheus metrics exported)
and `serve run` of a profile against it, in the foreground. Ctrl-C stops both, and only them.

    python -m serve_app.launch [--profile cpu | path/to/config.yaml] [--address HOST:PORT]
                               [--ingress proxy | haproxy]

With --address the app is deployed to that existing cluster instead of a new local one.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from serve_app.haproxy_ingress import INGRESSES, uses_haproxy
from serve_app.local_ray import SERVE_TUNING_ENV, LocalRay, free_ports

PROFILES = Path(__file__).resolve().parent.parent / "cluster" / "profiles"
DEFAULT_PORTS = {"gcs": 6379, "dashboard": 8265, "metrics": 8080}


def profile_path(profile: str) -> Path:
    path = Path(profile)
    if not path.suffix:
        path = PROFILES / f"{profile}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        raise SystemExit(f"no profile {profile!r}; known profiles: {known}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.launch")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--address", default=None, help="deploy to this running Ray cluster")
    parser.add_argument("--num-cpus", type=float, default=os.cpu_count() or 2)
    parser.add_argument("--ingress", choices=INGRESSES, default="proxy",
                        help="HTTP in front of the app on a new local head: Serve's Python "
                        "proxy, or HAProxy with direct ingress (Ray's high-throughput mode)")
    args = parser.parse_args(argv)
    if args.address and uses_haproxy(args.ingress):
        parser.error("--ingress haproxy configures the local head this starts; on a cluster of "
                     "your own, set RAY_SERVE_ENABLE_HA_PROXY=1 on every node before ray start")
    config = profile_path(args.profile)
    cluster = None
    if args.address is None:
        cluster = LocalRay(num_cpus=args.num_cpus, ports={**free_ports(), **DEFAULT_PORTS},
                           temp_dir="/tmp/ray-mmserve", env=dict(SERVE_TUNING_ENV),
                           haproxy=uses_haproxy(args.ingress))
        cluster.start()
        print(f"Ray head {cluster.address}: dashboard http://127.0.0.1:8265, "
              f"Prometheus metrics http://127.0.0.1:8080/metrics", flush=True)
    address = args.address or cluster.address
    serve = Path(sys.executable).parent / "serve"
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    runner = None
    try:
        runner = subprocess.Popen([str(serve), "run", "--address", address, str(config)])
        return runner.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let cleanup finish on a second Ctrl-C
        _stop(runner)
        if cluster is not None:
            cluster.stop()
            print("Ray head stopped.", flush=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop(runner: subprocess.Popen | None) -> None:
    """`serve run` shuts the app down on SIGINT; give it a moment, then insist."""
    if runner is None or runner.poll() is not None:
        return
    runner.send_signal(signal.SIGINT)
    try:
        runner.wait(timeout=30)
    except subprocess.TimeoutExpired:
        runner.kill()


if __name__ == "__main__":
    sys.exit(main())
