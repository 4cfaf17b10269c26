"""Replica groups that cannot serve until the cluster changes: no running replica, and no live
node that could hold one (its node type is gone, or never was). Serve's router would hold their
requests until the deadline; the ingress answers them 503 at once, with Retry-After, and
/readyz names the group and the missing resource.

Read from the Serve controller (each deployment's replicas and actor options) and the GCS (the
live nodes' resources), at most once per `max_age_s`, off the event loop. The request path never
waits for it: it uses the last answer and starts the next read when that one is old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deployments.core.errors import Unavailable
from deployments.core.placement_fit import describe_missing, missing_resources, replica_demand
from serve_app.fresh_result import FreshResult

# A missing node type does not come back in seconds; an autoscaler takes about a minute.
UNPLACEABLE_RETRY_AFTER_S = 30
PLACEMENT_MAX_AGE_S = 2.0
PLACEMENT_TRUSTED_FOR_S = 5.0
logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Unplaceable:
    group: str
    deployment: str
    missing: dict[str, float]

    def error(self) -> Unavailable:
        return Unavailable(f"the {self.group} group has no replica and none can be placed: "
                           f"no live node has {describe_missing(self.missing)}",
                           retry_after_s=UNPLACEABLE_RETRY_AFTER_S)

    def as_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "missing": self.missing}


def unplaceable_groups(deployments: dict[str, dict], groups: dict[str, str],
                       nodes: list[dict[str, float]]) -> dict[str, Unplaceable]:
    """Of `groups` (group -> deployment name), those with no RUNNING replica in `deployments`
    (Serve's details of the app's deployments) that no node of `nodes` could hold."""
    found = {}
    for group, name in groups.items():
        details = deployments.get(name)
        if details is None or any(r.get("state") == "RUNNING"
                                  for r in details.get("replicas", [])):
            continue
        options = details.get("deployment_config", {}).get("ray_actor_options") or {}
        missing = missing_resources(replica_demand(options), nodes)
        if missing:
            found[group] = Unplaceable(group, name, missing)
    return found


def read_cluster(app: str) -> tuple[dict[str, dict], list[dict[str, float]]]:
    """The app's deployments as the controller details them, and the live nodes' resources.
    Blocking: Ray calls."""
    import ray
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    deployments = details.get("applications", {}).get(app, {}).get("deployments", {})
    nodes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    return deployments, nodes


class PlacementWatch:
    def __init__(self, app: str | None, groups: dict[str, str],
                 read: Callable[[str], tuple[dict, list]] = read_cluster,
                 max_age_s: float = PLACEMENT_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.groups, self.read = app, groups, read
        self._fresh = FreshResult(self._check, max_age_s, clock)
        self.max_age_s, self.clock = max_age_s, clock
        self._last: dict[str, Unplaceable] = {}
        self._last_at = -PLACEMENT_TRUSTED_FOR_S
        self._refreshing: asyncio.Future | None = None
        self._refreshed_at = -max_age_s

    @classmethod
    def of_handles(cls, handles: dict[str, Any]) -> PlacementWatch:
        """A watch of the groups whose handles are Serve's (a name and an app); none else."""
        groups = {group: handle.deployment_name for group, handle in handles.items()
                  if isinstance(getattr(handle, "deployment_name", None), str)}
        apps = {handle.app_name for group, handle in handles.items() if group in groups}
        if len(apps) != 1:
            return cls(None, {})
        return cls(apps.pop(), groups)

    async def current(self) -> dict[str, Unplaceable]:
        """The groups that cannot be placed, from a read at most `max_age_s` old."""
        if not self.groups:
            return {}
        self._last = await self._fresh.get()
        self._last_at = self.clock()
        return self._last

    def refusal(self, group: str) -> Unavailable | None:
        """The error for a call to `group` now, from the last read if it is recent, without
        waiting; starts the next read when that one is old. An idle ingress's last read may
        predate a redeploy or a node's return, so an old read refuses nothing."""
        now = self.clock()
        if self.groups and now - self._refreshed_at > self.max_age_s and (
                self._refreshing is None or self._refreshing.done()):
            self._refreshed_at = now
            self._refreshing = asyncio.ensure_future(self.current())
        stuck = self._last.get(group)
        if stuck is None or now - self._last_at > PLACEMENT_TRUSTED_FOR_S:
            return None
        return stuck.error()

    async def _check(self) -> dict[str, Unplaceable]:
        try:
            deployments, nodes = await asyncio.to_thread(self.read, self.app)
        except Exception as error:  # the controller busy or restarting: nothing known
            logger.warning("placement check failed: %r", error)
            return {}
        return unplaceable_groups(deployments, self.groups, nodes)
