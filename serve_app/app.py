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
    autoscaling_config,
    deployment_options,
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
    metrics_enabled = config.observability.metrics
    scheduling, capacity = config.slo.scheduling, config.capacity
    text_settings = _with_queue_policy(config.text, scheduling)
    text = TextGenerator.options(
        **deployment_options(text_settings, TEXT, scheduling, capacity)).bind(
        _init_args(text_settings), model_dir, metrics_enabled)
    vision = ImageEmbedder.options(
        **deployment_options(config.vision, VISION, scheduling, capacity)).bind(
        _init_args(config.vision), model_dir, metrics_enabled)
    audio = SpeechTranscriber.options(
        **deployment_options(config.audio, AUDIO, scheduling, capacity)).bind(
        _init_args(config.audio), model_dir, metrics_enabled)
    return Ingress.options(**_ingress_options(config)).bind(
        config.model_dump(), text, vision, audio)


def _ingress_options(config: AppConfig) -> dict[str, Any]:
    ingress = config.ingress
    actor_options: dict[str, Any] = {"num_cpus": ingress.num_cpus}
    if ingress.resources:
        actor_options["resources"] = dict(ingress.resources)
    options: dict[str, Any] = {"name": INGRESS,
                               "max_ongoing_requests": ingress.max_ongoing_requests,
                               "max_queued_requests": ingress.max_queued_requests,
                               "ray_actor_options": actor_options}
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
    # Batching reaches replicas only through user_config, so changing it reconfigures them
    # in place; were it also a constructor argument, Serve would restart them.
    return settings.model_dump(exclude={"batching"})
