"""Finds the replicas of a running app, SIGKILLs one, waits for Serve to replace it, and reads
each replica's resident memory: what the replica-fault test and the soak share.

Replicas are found through Serve's own view (the dashboard's serve details, which carry every
replica's state and PID), so no driver connection is needed. Killing and reading memory work
only for replicas on this machine: a replica on another node is reported, never guessed at.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

MODALITY_DEPLOYMENTS = {"text": "TextGenerator", "vision": "ImageEmbedder",
                        "audio": "SpeechTranscriber"}
RUNNING = "RUNNING"
POLL_S = 0.5


@dataclass(frozen=True)
class Replica:
    deployment: str
    replica_id: str
    pid: int | None
    state: str
    node_ip: str | None
    start_time_s: float


@dataclass(frozen=True)
class Kill:
    deployment: str
    pid: int
    replica_id: str
    at: float  # epoch seconds of the SIGKILL


class ReplicaView:
    """Serve's view of one application's replicas, read through the dashboard."""

    def __init__(self, dashboard_url: str, app_name: str) -> None:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

        self.app_name = app_name
        self._sdk = ServeSubmissionClient(dashboard_url)

    def details(self) -> dict[str, Any]:
        """The application's entry of Serve's details ({} while it is not deployed)."""
        return self._sdk.get_serve_details().get("applications", {}).get(self.app_name) or {}

    def replicas(self, deployment: str | None = None) -> list[Replica]:
        """Every replica Serve lists (any state), of one deployment or of all of them."""
        deployments = self.details().get("deployments", {})
        names = [deployment] if deployment else list(deployments)
        return [_replica(name, entry) for name in names
                for entry in deployments.get(name, {}).get("replicas", [])]

    def running(self, deployment: str | None = None) -> list[Replica]:
        return [r for r in self.replicas(deployment) if r.state == RUNNING and r.pid]

    def pids(self) -> dict[str, list[int]]:
        """{deployment: sorted PIDs of its running replicas}."""
        found: dict[str, list[int]] = {}
        for replica in self.running():
            found.setdefault(replica.deployment, []).append(replica.pid)
        return {name: sorted(pids) for name, pids in sorted(found.items())}

    def healthy(self) -> bool:
        """The app is RUNNING and every deployment HEALTHY, as `serve status` shows it."""
        app = self.details()
        deployments = app.get("deployments", {})
        return app.get("status") == RUNNING and bool(deployments) and all(
            d.get("status") == "HEALTHY" for d in deployments.values())

    def kill_one(self, deployment: str) -> Kill:
        """SIGKILLs the oldest running replica of `deployment` (it must run on this machine)."""
        running = sorted(self.running(deployment), key=lambda r: r.start_time_s)
        if not running:
            raise RuntimeError(f"{deployment} has no running replica to kill")
        victim = running[0]
        if not self.is_local(victim):
            raise RuntimeError(f"the {deployment} replica {victim.replica_id} (pid {victim.pid} "
                               f"on {victim.node_ip}) is not a process of this machine: it "
                               "cannot be killed here")
        os.kill(victim.pid, signal.SIGKILL)
        return Kill(deployment, victim.pid, victim.replica_id, time.time())

    def is_local(self, replica: Replica) -> bool:
        """Its PID here is that replica's process: Ray titles it ray::ServeReplica:APP:NAME,
        so a PID of another machine (or one reused since) is never taken for it."""
        title = f"ServeReplica:{self.app_name}:{replica.deployment}"
        try:
            with open(f"/proc/{replica.pid}/cmdline", "rb") as cmdline:
                return title.encode() in cmdline.read()
        except OSError:
            return False

    def wait_replaced(self, kill: Kill, timeout_s: float = 120) -> Replica:
        """The running replica of the killed one's deployment that Serve started after it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fresh = [r for r in self.running(kill.deployment)
                     if r.pid != kill.pid and r.replica_id != kill.replica_id
                     and r.start_time_s >= kill.at - 1]
            if fresh:
                return fresh[0]
            time.sleep(POLL_S)
        raise TimeoutError(f"{kill.deployment}: no replica replaced pid {kill.pid} "
                           f"within {timeout_s:g} s")

    def wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(POLL_S)
        raise TimeoutError(f"{self.app_name} was not healthy within {timeout_s:g} s")


def _replica(deployment: str, entry: dict[str, Any]) -> Replica:
    return Replica(deployment=deployment, replica_id=entry.get("replica_id", ""),
                   pid=entry.get("pid"), state=str(entry.get("state", "")),
                   node_ip=entry.get("node_ip"), start_time_s=float(entry.get("start_time_s", 0)))


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process on this machine, None once it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
