"""The app a fuzz or soak run works on: started here from a profile, or running at --url with
its dashboard at --dashboard; with Serve's view of its replicas, to kill and check them."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.app_launcher import Target
from bench.replica_kill import ReplicaView
from bench.run import open_target
from cluster.deploy import APP_NAME


@contextmanager
def app_under_test(args: argparse.Namespace) -> Iterator[tuple[Target, ReplicaView]]:
    with open_target(args.url, args.profile, [], args.num_cpus, 1, args.ingress) as target:
        dashboard = target.dashboard_url or args.dashboard
        if not dashboard:
            raise SystemExit("give --dashboard with --url: replicas are found and checked "
                             "through Serve's view of them")
        yield target, ReplicaView(dashboard, args.app_name or APP_NAME)


def app_args(target: Target) -> dict[str, Any]:
    """The builder args the app was deployed with ({} when unknown: a server at --url)."""
    applications = (target.config or {}).get("applications") or [{}]
    return applications[0].get("args") or {}
