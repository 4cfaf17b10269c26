"""`make serve`: a local Ray head (dashboard on 127.0.0.1:8265, Prometheus metrics exported)
and `serve run` of a profile against it, in the foreground. Ctrl-C, SIGTERM or SIGHUP (to this
process or to its whole process group) stops both, and only them.

    python -m cluster.launch [--profile cpu | path/to/config.yaml] [--address HOST:PORT]
                               [--ingress haproxy | proxy] [--http-port N] [--ray-port N]
                               [--dashboard-port N] [--metrics-port N] [--temp-dir DIR]
    python -m cluster.launch --print-ray-env   # exports for a driver of that head

With --address the app is deployed to that existing cluster instead of a new local one.
The local head binds 127.0.0.1 and runs with Ray's token auth (cluster/local_ray.py). The head,
hence the ingress, inherits this environment: MMSERVE_API_KEYS and MMSERVE_TENANTS_FILE (made
an absolute path here) are read by the ingress, and checked here before anything starts.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from cluster.deploy import UnknownProfile, profile_path, with_capacity_policy
from cluster.haproxy_ingress import DEFAULT_INGRESS, INGRESSES, uses_haproxy
from cluster.local_ray import (
    SERVE_TUNING_ENV,
    LocalRay,
    dies_with_this_thread,
    free_ports,
    mmserve_home,
)
from cluster.run_dir import UnsafeDirectory, new_run_dir
from deployments.core.config import ConfigError, load_config
from serve_app.auth import ANONYMOUS_WARNING, check_exposure, load_key_directory

DEFAULT_PORTS = {"gcs": 6379, "dashboard": 8265, "metrics": 8080}
DEFAULT_TEMP_DIR = "/tmp/ray-mmserve"
TENANTS_FILE_ENV = "MMSERVE_TENANTS_FILE"
APP_BUILDER = "serve_app.app:build_app"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SERVE_RUN_STOP_S = 20  # `serve run` shuts the app down on SIGINT; then it is killed
HEAD_ENV = {
    **SERVE_TUNING_ENV,
    # On SIGTERM `ray start` first drains its node (30 s by default) so that proxies elsewhere
    # stop routing to it; this head is the whole cluster and its app is already shut down.
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2",
}


class Stopped(BaseException):
    """A stop signal arrived: unwinds to the cleanup, like KeyboardInterrupt, for any signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster.launch")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--address", default=None, help="deploy to this running Ray cluster")
    parser.add_argument("--num-cpus", type=float, default=os.cpu_count() or 2)
    parser.add_argument("--ingress", choices=INGRESSES, default=None,
                        help="HTTP in front of the app on a new local head: HAProxy with "
                        "direct ingress (Ray's high-throughput mode, the default) or Serve's "
                        "Python proxy; with --address, the cluster's own")
    parser.add_argument("--http-port", type=int, default=None,
                        help="instead of the profile's http_options.port")
    parser.add_argument("--ray-port", type=int, default=DEFAULT_PORTS["gcs"])
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_PORTS["dashboard"])
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_PORTS["metrics"])
    parser.add_argument("--temp-dir", default=DEFAULT_TEMP_DIR, help="the local head's")
    parser.add_argument("--print-ray-env", action="store_true",
                        help="print the exports a driver (ray.init, serve CLI) of the local "
                        "head needs, and exit")
    args = parser.parse_args(argv)
    if args.address is None:
        args.ingress = args.ingress or DEFAULT_INGRESS
    elif args.ingress is not None:
        parser.error("--ingress configures the local head this starts; on a cluster of your "
                     "own, set RAY_SERVE_ENABLE_HA_PROXY=1 on every node before ray start for "
                     "HAProxy")
    return args


def main(argv: list[str] | None = None) -> int:
    # First of all: a signal from here on unwinds to the cleanup below, never past it.
    _catch_stop_signals()
    cluster = runner = run_dir = None
    try:
        args = parse_args(argv)
        if args.print_ray_env:
            return _print_ray_env(args)
        try:
            config_file = profile_path(args.profile)
        except UnknownProfile as error:
            raise SystemExit(str(error)) from None
        config = yaml.safe_load(config_file.read_text()) or {}
        if args.address is None:
            absolute_tenants_file()
            refuse_anonymous_exposure(config)
        try:
            run_dir = new_run_dir(mmserve_home(), "serve-")
            config_file = served_config_file(config_file, config, args.http_port, run_dir)
        except (ConfigError, UnsafeDirectory) as error:
            raise SystemExit(str(error)) from None
        if args.address is None:
            cluster = _local_head(args, run_dir)
            try:
                cluster.start()
            except UnsafeDirectory as error:
                raise SystemExit(str(error)) from None
            print(f"Ray head {cluster.address}: dashboard {cluster.dashboard_url}, "
                  f"Prometheus metrics http://127.0.0.1:{args.metrics_port}/metrics; "
                  f"Ray token auth: {_driver_hint(args)}", flush=True)
        runner = _serve_run(args.address or cluster.address, config_file,
                            cluster.driver_env() if cluster else {})
        return runner.wait()
    except Stopped as stop:
        return 128 + stop.signum
    finally:
        _ignore_stop_signals()  # nothing may cut the cleanup short now
        _stop(runner)
        if cluster is not None:
            cluster.stop()
            print("Ray head stopped.", flush=True)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)


def _catch_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _on_stop_signal(signum: int, frame: object) -> None:
    # A second signal usually follows the first: `make` sends its children SIGTERM too when the
    # group gets one. Ignoring the rest before unwinding keeps it from interrupting the cleanup.
    _ignore_stop_signals()
    raise Stopped(signum)


def _local_head(args: argparse.Namespace, run_dir: Path | None = None) -> LocalRay:
    ports = {**free_ports(), "gcs": args.ray_port, "dashboard": args.dashboard_port,
             "metrics": args.metrics_port}
    return LocalRay(num_cpus=args.num_cpus, ports=ports, temp_dir=args.temp_dir,
                    env=dict(HEAD_ENV), haproxy=uses_haproxy(args.ingress),
                    run_dir=str(run_dir) if run_dir else None, loopback_only=True,
                    die_with_parent=True)


def refuse_anonymous_exposure(config: dict) -> None:
    """The checks the ingress makes at start-up, made before anything starts: every configured
    key source (from this environment, which the head inherits) holds a key, and an app
    binding HTTP beyond loopback has one. An anonymous API is said out loud."""
    host = config.get("http_options", {}).get("host", "127.0.0.1")
    for app in config.get("applications", []):
        if app.get("import_path") != APP_BUILDER:
            continue
        try:
            ingress = load_config(app.get("args")).ingress
            keys = load_key_directory(ingress)
            check_exposure(host, not keys.anonymous, ingress.allow_anonymous)
        except ConfigError as error:
            raise SystemExit(str(error)) from None
        if keys.anonymous:
            print(f"WARNING: {ANONYMOUS_WARNING}", file=sys.stderr, flush=True)


def absolute_tenants_file() -> None:
    """MMSERVE_TENANTS_FILE as an absolute path: the ingress replicas, which inherit it, run in
    another working directory."""
    named = os.environ.get(TENANTS_FILE_ENV, "").strip()
    if named:
        os.environ[TENANTS_FILE_ENV] = str(Path(named).expanduser().resolve())


def served_config_file(profile: Path, config: dict, http_port: int | None,
                       run_dir: Path) -> Path:
    """The file `serve run` reads: the profile itself, or, where it must change (another HTTP
    port, the app's autoscaling policy, cluster/deploy.py), a copy in this launch's private
    run dir (cluster/run_dir.py)."""
    served = with_capacity_policy(config)
    if http_port is not None:
        served["http_options"] = {**served.get("http_options", {}), "port": http_port}
    if served == config:
        return profile
    path = run_dir / "serve-config.yaml"
    path.write_text(yaml.safe_dump(served, sort_keys=False))
    return path


def _serve_run(address: str, config_file: Path, env: dict[str, str]) -> subprocess.Popen:
    serve = Path(sys.executable).parent / "serve"
    return subprocess.Popen([str(serve), "run", "--address", address, str(config_file)],
                            env={**os.environ, **env}, preexec_fn=dies_with_this_thread())


def _stop(runner: subprocess.Popen | None) -> None:
    """`serve run` shuts the app down on SIGINT; give it a moment, then insist."""
    if runner is None or runner.poll() is not None:
        return
    runner.send_signal(signal.SIGINT)
    try:
        runner.wait(timeout=SERVE_RUN_STOP_S)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.wait()


def _driver_hint(args: argparse.Namespace) -> str:
    port = "" if args.ray_port == DEFAULT_PORTS["gcs"] else f" --ray-port {args.ray_port}"
    return f'for a driver, eval "$(python -m cluster.launch --print-ray-env{port})"'


def _print_ray_env(args: argparse.Namespace) -> int:
    head = _local_head(args)
    env = {**head.driver_env(), "RAY_ADDRESS": head.address}
    print("\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
