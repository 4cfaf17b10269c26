"""The typed app config: defaults, Serve options, and errors that name the bad field."""

from __future__ import annotations

import pytest

from deployments.core.config import ConfigError, load_config
from deployments.replicas.serve_options import deployment_options


def test_defaults_are_valid_and_cpu_friendly():
    config = load_config(None)
    assert config.text.engine.name == "transformers"
    # chosen at start from the CPU the replica finds (deployments/core/precision.py)
    assert config.audio.engine.compute_type == "auto"
    assert config.text.engine.dtype == config.vision.engine.dtype == "auto"
    assert config.ingress.num_cpus == 0  # never starves on a 2-CPU node
    for settings in (config.text, config.vision, config.audio):
        assert settings.resources.num_cpus < 1
        assert settings.max_ongoing_requests >= settings.batching.max_batch_size


def test_serve_options_carry_resources_batching_and_autoscaling():
    config = load_config({"text": {
        "resources": {"num_cpus": 1, "num_gpus": 1, "accelerator_type": "A100",
                      "resources": {"neuron_cores": 2}},
        "autoscaling": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16},
        "batching": {"max_batch_size": 32, "batch_wait_timeout_s": 0.05}}})
    options = deployment_options(config.text, "TextGenerator")
    assert options["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1,
                                            "accelerator_type": "A100",
                                            "resources": {"neuron_cores": 2}}
    assert options["user_config"] == {"max_batch_size": 32, "batch_wait_timeout_s": 0.05,
                                      "scheduling": "fifo"}
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert "num_replicas" not in options


@pytest.mark.parametrize(("args", "field"), [
    ({"text": {"batching": {"max_batch_size": 0}}}, "text.batching.max_batch_size"),
    ({"vision": {"engine": {"name": "tensorflow"}}}, "vision.engine.name"),
    ({"audio": {"resoures": {}}}, "audio.resoures"),
    ({"text": {"autoscaling": {"min_replicas": 3, "max_replicas": 1}}}, "text.autoscaling"),
    ({"ingress": {"max_body_bytes": "big"}}, "ingress.max_body_bytes"),
])
def test_invalid_config_names_the_field(args, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(args)


def test_the_apps_scheduling_reaches_every_group_and_the_text_engine():
    from deployments.replicas.serve_options import deployment_options

    config = load_config({"slo": {"scheduling": "slo"}})
    assert deployment_options(config.vision, "V", config.slo.scheduling)[
        "user_config"]["scheduling"] == "slo"
    assert config.text.engine.queue_policy is None  # unset: the app's, resolved at build


def test_a_bounded_batcher_queue_needs_room_in_max_ongoing_requests():
    fits = load_config({"vision": {"max_ongoing_requests": 32,
                                   "batching": {"max_batch_size": 8, "max_waiting_items": 24}}})
    assert deployment_options(fits.vision, "V")["user_config"]["max_waiting_items"] == 24
    with pytest.raises(ConfigError, match="max_waiting_items"):
        load_config({"vision": {"max_ongoing_requests": 31,
                                "batching": {"max_batch_size": 8, "max_waiting_items": 24}}})
