"""A group's settings (deployments/core/config.py) as Ray Serve deployment options.

The queue policy and the request routers are named by import path: Serve imports them where
the app is built and pickles them by value for its controller and for each caller.
"""

from __future__ import annotations

from typing import Any

from deployments.core.config import Autoscaling, DeploymentSettings, TextSettings

QUEUE_POLICY = "deployments.replicas.autoscaling_policy:QueuePolicy"
SCHEDULING = "scheduling"  # the user_config key beside the batching settings
TEXT_ROUTERS = {"prefix": "deployments.replicas.prefix_router:PrefixAffinityRouter",
                "ray_prefix": "deployments.replicas.ray_prefix_router:RayPrefixRouter"}


def autoscaling_config(autoscaling: Autoscaling) -> dict[str, Any]:
    """Serve's autoscaling_config. With the queue policy, Serve's own delays are 0: it
    applies them to a custom policy's answer too, and they would add to the policy's."""
    config = autoscaling.model_dump(exclude_none=True, exclude={"policy"})
    if autoscaling.policy == "queue":
        config["policy"] = {"policy_function": QUEUE_POLICY, "policy_kwargs": {
            "upscale_delay_s": autoscaling.upscale_delay_s,
            "downscale_delay_s": autoscaling.downscale_delay_s}}
        config.update(upscale_delay_s=0.0, downscale_delay_s=0.0)
    return config


def deployment_options(settings: DeploymentSettings, name: str,
                       scheduling: str = "fifo") -> dict[str, Any]:
    """The options of `Deployment.options(...)` for one replica group; `scheduling` is the
    app's queue policy (slo.scheduling), which reaches the batchers with their settings."""
    options: dict[str, Any] = {
        "name": name,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "health_check_period_s": settings.health_check_period_s,
        "health_check_timeout_s": settings.health_check_timeout_s,
        "ray_actor_options": settings.resources.ray_actor_options(),
        "user_config": {**settings.batching.model_dump(), SCHEDULING: scheduling},
    }
    if settings.autoscaling is not None:
        options["autoscaling_config"] = autoscaling_config(settings.autoscaling)
    else:
        options["num_replicas"] = settings.num_replicas
    if isinstance(settings, TextSettings) and settings.routing != "default":
        options["request_router_config"] = {
            "request_router_class": TEXT_ROUTERS[settings.routing],
            "request_router_kwargs": {
                "imbalanced_threshold": settings.routing_imbalanced_threshold}}
    return options
