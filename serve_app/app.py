"""The application builder that `serve run` imports: binds every deployment from the config.

    serve run serve_app.app:build_app               # defaults (CPU profile)
    serve run cluster/profiles/cpu.yaml             # a Serve config file with args/overrides
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.core.config import AppConfig, DeploymentSettings, TextSettings, load_config
from deployments.core.models import default_model_dir
from deployments.replicas.audio import SpeechTranscriber
from deployments.replicas.serve_options import (
    GROUP_DEPLOYMENTS,
    INGRESS,
    INGRESS_SURGE_PERCENT,
    autoscaling_config,
    canary_name,
    deployment_options,
    drain_timeout_s,
)
from deployments.replicas.text import TextGenerator
from deployments.replicas.vision import ImageEmbedder
from serve_app.ingress import Ingress

TEXT, VISION, AUDIO = (GROUP_DEPLOYMENTS[group] for group in ("text", "vision", "audio"))


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve application builder; `args` is an AppConfig as a dict (docs/configuration.md)."""
    return bind_app(load_config(args))


def bind_app(config: AppConfig) -> Application:
    model_dir = config.model_dir or str(default_model_dir())
    text_settings = _with_queue_policy(config.text, config.slo.scheduling)
    groups = {"text": (TextGenerator, text_settings, TEXT),
              "vision": (ImageEmbedder, config.vision, VISION),
              "audio": (SpeechTranscriber, config.audio, AUDIO)}
    bound = {group: _bind_group(config, model_dir, *spec) for group, spec in groups.items()}
    canaries = {}
    for group, (deployment, settings, name) in groups.items():
        canary = settings.canary_settings()
        if canary is not None:
            canaries[group] = _bind_group(config, model_dir, deployment, canary,
                                          canary_name(name))
    return Ingress.options(**_ingress_options(config)).bind(
        config.model_dump(), bound["text"], bound["vision"], bound["audio"], canaries)


def _bind_group(config: AppConfig, model_dir: str, deployment: Any,
                settings: DeploymentSettings, name: str) -> Application:
    """One group's deployment (or its canary's, under its own name) bound to its settings."""
    options = deployment_options(settings, name, config.slo.scheduling, config.capacity,
                                 drain_timeout_s(config))
    return deployment.options(**options).bind(_init_args(settings), model_dir,
                                              config.observability.metrics)


def _ingress_options(config: AppConfig) -> dict[str, Any]:
    ingress = config.ingress
    actor_options: dict[str, Any] = {"num_cpus": ingress.num_cpus}
    if ingress.resources:
        actor_options["resources"] = dict(ingress.resources)
    options: dict[str, Any] = {"name": INGRESS,
                               "max_ongoing_requests": ingress.max_ongoing_requests,
                               "max_queued_requests": ingress.max_queued_requests,
                               "ray_actor_options": actor_options,
                               "graceful_shutdown_timeout_s": drain_timeout_s(config),
                               "max_surge_percent": INGRESS_SURGE_PERCENT}
    if ingress.autoscaling is not None:
        options["autoscaling_config"] = autoscaling_config(ingress.autoscaling)
    else:
        options["num_replicas"] = ingress.num_replicas
    return options


def _with_queue_policy(text: TextSettings, scheduling: str) -> TextSettings:
    """The text settings with the engine's queue policy set: its own, else the app's."""
    if text.engine.queue_policy is not None:
        return text
    engine = text.engine.model_copy(update={"queue_policy": scheduling})
    return text.model_copy(update={"engine": engine})


def _init_args(settings: DeploymentSettings) -> dict[str, Any]:
    # Batching reaches replicas only through user_config, so a `deployments:` override of it
    # reconfigures them in place. The canary is another deployment's settings.
    return settings.model_dump(exclude={"batching", "canary", "max_surge_percent"})
