"""A group's settings (deployments/core/config.py) as Ray Serve deployment options, and the
capacity allocator as the application's autoscaling policy.

The policies and the request routers are named by import path: Serve imports them where the
app is built and pickles them by value for its controller and for each caller.
"""

from __future__ import annotations

from typing import Any

from deployments.core.config import (
    AppConfig,
    Autoscaling,
    Capacity,
    DeploymentSettings,
    TextSettings,
)

QUEUE_POLICY = "deployments.replicas.autoscaling_policy:QueuePolicy"
CAPACITY_POLICY = "deployments.replicas.capacity_policy:CapacityPolicy"
SCHEDULING = "scheduling"  # the user_config key beside the batching settings
TEXT_ROUTERS = {"prefix": "deployments.replicas.prefix_router:PrefixAffinityRouter",
                "ray_prefix": "deployments.replicas.ray_prefix_router:RayPrefixRouter"}
# Each model group's Serve deployment, by its name in the config.
GROUP_DEPLOYMENTS = {"text": "TextGenerator", "vision": "ImageEmbedder",
                     "audio": "SpeechTranscriber"}
INGRESS = "Ingress"
CANARY_SUFFIX = "-canary"
# A replica being replaced gets this long beyond the request deadline to finish its last
# requests: no request (streams included) outlives its deadline, so none is cut.
DRAIN_MARGIN_S = 10.0
INGRESS_SURGE_PERCENT = 100  # the ingress reserves little: it always starts its replacement first


def canary_name(deployment: str) -> str:
    """The Serve deployment of a group's canary (its `canary:` settings)."""
    return deployment + CANARY_SUFFIX


def drain_timeout_s(config: AppConfig) -> float:
    """Serve's graceful_shutdown_timeout_s for every deployment: a replica that a rollout
    replaces keeps serving its in-flight requests until the longest of them reaches its
    deadline (Serve's default, 20 s, would cut a longer stream)."""
    return config.ingress.request_timeout_s + DRAIN_MARGIN_S


def autoscaling_config(autoscaling: Autoscaling,
                       capacity: Capacity | None = None) -> dict[str, Any]:
    """Serve's autoscaling_config. With the queue policy Serve's own delays are 0: it applies
    them to a custom policy's answer too, and they would add to the policy's.

    Under the capacity allocator (`capacity` enabled) every group names the queue policy, with
    its own delays: the application's policy takes precedence over it (Serve logs a warning
    saying so) and the allocator keeps its delays itself; where the app has no policy (Python's
    `serve.run` cannot set one) the group scales on its own queue rather than on Serve's
    default policy with no delays. Unset load windows are the allocator's short ones."""
    config = autoscaling.model_dump(exclude_none=True, exclude={"policy"})
    under_allocator = capacity is not None and capacity.enabled
    if under_allocator:
        config.setdefault("metrics_interval_s", capacity.metrics_interval_s)
        config.setdefault("look_back_period_s", capacity.look_back_period_s)
    if autoscaling.policy == "queue" or under_allocator:
        config["policy"] = {"policy_function": QUEUE_POLICY, "policy_kwargs": {
            "upscale_delay_s": autoscaling.upscale_delay_s,
            "downscale_delay_s": autoscaling.downscale_delay_s}}
        config.update(upscale_delay_s=0.0, downscale_delay_s=0.0)
    return config


def group_autoscaling(settings: DeploymentSettings, capacity: Capacity) -> Autoscaling | None:
    """The group's autoscaling; under the allocator, a group without any is pinned at its
    num_replicas (min = max), so the allocator sees its load and counts its CPUs."""
    if settings.autoscaling is not None or not capacity.enabled:
        return settings.autoscaling
    return Autoscaling(min_replicas=settings.num_replicas, max_replicas=settings.num_replicas)


def deployment_options(settings: DeploymentSettings, name: str, scheduling: str = "fifo",
                       capacity: Capacity | None = None,
                       drain_s: float | None = None) -> dict[str, Any]:
    """The options of `Deployment.options(...)` for one replica group; `scheduling` is the
    app's queue policy (slo.scheduling), which reaches the batchers with their settings;
    `capacity` the app's allocator settings; `drain_s` how long a replica being replaced may
    finish its requests (drain_timeout_s; unset: Serve's default)."""
    capacity = capacity or Capacity()
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "health_check_period_s": settings.health_check_period_s,
        "health_check_timeout_s": settings.health_check_timeout_s,
        "ray_actor_options": settings.resources.ray_actor_options(),
        "max_surge_percent": settings.max_surge_percent,
        "user_config": {**settings.batching.model_dump(exclude_none=True), SCHEDULING: scheduling},
    }
    if drain_s is not None:
        options["graceful_shutdown_timeout_s"] = drain_s
    autoscaling = group_autoscaling(settings, capacity)
    if autoscaling is not None:
        options["autoscaling_config"] = autoscaling_config(autoscaling, capacity)
    else:
        options["num_replicas"] = settings.num_replicas
    if isinstance(settings, TextSettings) and settings.routing != "default":
        options["request_router_config"] = {
            "request_router_class": TEXT_ROUTERS[settings.routing],
            "request_router_kwargs": {
                "imbalanced_threshold": settings.routing_imbalanced_threshold}}
    return options


def capacity_policy(config: AppConfig) -> dict[str, Any] | None:
    """The application's `autoscaling_policy` in the Serve config, or None with the allocator
    off: the capacity policy (deployments/replicas/capacity_policy.py) over every group."""
    capacity = config.capacity
    if not capacity.enabled:
        return None
    groups = {GROUP_DEPLOYMENTS[group]: {
        "group": group, "objective_s": config.group_objective_s(group),
        "cpus_per_replica": getattr(config, group).resources.num_cpus}
        for group in GROUP_DEPLOYMENTS}
    kwargs = {"pool_cpus": capacity.pool_cpus, "reserved_cpus": _ingress_cpus(config),
              "groups": groups, "metrics": config.observability.metrics,
              **capacity.model_dump(include={"busy_fraction", "slack_fraction",
                                             "upscale_delay_s", "reclaim_delay_s",
                                             "downscale_delay_s"})}
    return {"policy_function": CAPACITY_POLICY, "policy_kwargs": kwargs}


def _ingress_cpus(config: AppConfig) -> float:
    """The most CPUs the ingress's replicas reserve: kept out of a pool read from the cluster."""
    ingress = config.ingress
    replicas = (ingress.autoscaling.max_replicas if ingress.autoscaling is not None
                else ingress.num_replicas)
    return replicas * ingress.num_cpus
