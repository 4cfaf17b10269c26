"""Every profile builds into the application it promises, without loading a model: each
deployment's placement, engine, autoscaling and batching, read from Serve's own build."""

from __future__ import annotations

import pytest
from ray.serve.schema import ServeDeploySchema
from ray.util import accelerators

from serve_app.app import AUDIO, INGRESS, TEXT, VISION
from tests.profiles import PROFILES, built_deployments, load_profile

NAMES = sorted(p.stem for p in PROFILES.glob("*.yaml"))
MODELS = (TEXT, VISION, AUDIO)
KNOWN_ACCELERATORS = {v for k, v in vars(accelerators).items() if k.isupper()}
H100 = {"accelerator_type": "H100", "num_gpus": 1.0}
ON_CPU_NODES = {"resources": {"cpu_node": 0.001}, "num_gpus": 0.0}
# profile -> deployment -> (ray_actor_options it must contain, engine name)
EXPECTED = {
    "cpu": {TEXT: ({"num_gpus": 0.0}, "vllm"),
            VISION: ({"num_gpus": 0.0}, "open_clip"),
            AUDIO: ({"num_gpus": 0.0}, "faster_whisper")},
    "cpu-transformers": {TEXT: ({"num_gpus": 0.0}, "transformers"),
                         VISION: ({"num_gpus": 0.0}, "open_clip"),
                         AUDIO: ({"num_gpus": 0.0}, "faster_whisper")},
    "gpu": {TEXT: (H100, "vllm"),
            VISION: ({"accelerator_type": "L4", "num_gpus": 0.25}, "open_clip"),
            AUDIO: ({"accelerator_type": "A10G", "num_gpus": 0.5}, "faster_whisper")},
    "inferentia": {TEXT: ({"resources": {"neuron_cores": 2.0}, "num_gpus": 0.0}, "neuron"),
                   VISION: ({"resources": {"neuron_cores": 1.0}, "num_gpus": 0.0}, "neuron"),
                   AUDIO: (ON_CPU_NODES, "faster_whisper")},
    "mixed": {TEXT: (H100, "vllm"),
              VISION: ({"resources": {"neuron_cores": 1.0}, "num_gpus": 0.0}, "neuron"),
              AUDIO: (ON_CPU_NODES, "faster_whisper")},
    "mixed-local": {TEXT: ({"accelerator_type": "H100", "num_gpus": 0.0}, "transformers"),
                    VISION: ({"resources": {"neuron_cores": 1.0}}, "open_clip"),
                    AUDIO: ({"resources": {"cpu_node": 0.001}}, "faster_whisper")},
}
SETTINGS_KEY = {TEXT: "text", VISION: "vision", AUDIO: "audio"}


def test_every_profile_is_covered_here():
    assert sorted(EXPECTED) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_profile_is_a_valid_serve_config(name):
    ServeDeploySchema.model_validate(load_profile(name))


@pytest.mark.parametrize("name", NAMES)
def test_each_modality_asks_for_its_hardware(name):
    deployments = built_deployments(load_profile(name))
    assert sorted(deployments) == sorted([*MODELS, INGRESS])
    for deployment, (placement, _) in EXPECTED[name].items():
        options = deployments[deployment].ray_actor_options
        assert {k: options.get(k) for k in placement} == placement, (deployment, options)
        if options.get("num_gpus"):
            assert options.get("accelerator_type") in KNOWN_ACCELERATORS, options
    assert deployments[INGRESS].ray_actor_options.get("num_gpus", 0) == 0


@pytest.mark.parametrize("name", NAMES)
def test_each_modality_runs_the_engine_for_its_hardware(name):
    args = load_profile(name)["applications"][0]["args"]
    for deployment, (placement, engine) in EXPECTED[name].items():
        settings = args[SETTINGS_KEY[deployment]]
        assert settings["engine"]["name"] == engine
        on_gpu = placement.get("num_gpus", 0) > 0
        if engine in ("open_clip", "faster_whisper"):
            assert settings["engine"].get("device", "cpu") == ("cuda" if on_gpu else "cpu")


@pytest.mark.parametrize("name", NAMES)
def test_autoscaling_targets_one_full_batch_per_replica(name):
    for deployment_name, deployment in built_deployments(load_profile(name)).items():
        config = deployment._deployment_config
        autoscaling = config.autoscaling_config
        assert autoscaling is not None, f"{deployment_name} has no autoscaling_config"
        assert 1 <= autoscaling.min_replicas <= autoscaling.max_replicas
        if deployment_name in MODELS:
            batch = config.user_config["max_batch_size"]
            assert autoscaling.target_ongoing_requests == batch, deployment_name
            waiting = config.user_config.get("max_waiting_items")
            if waiting is None:
                assert config.max_ongoing_requests == 2 * batch, deployment_name
            else:  # a bounded queue sheds before the replica is full
                assert config.max_ongoing_requests >= waiting + batch, deployment_name
            assert 0 <= config.user_config["batch_wait_timeout_s"] <= 0.1


@pytest.mark.parametrize("name", ["gpu", "inferentia", "mixed"])
def test_cloud_profiles_scale_out_and_wait_before_scaling_in(name):
    for deployment_name, deployment in built_deployments(load_profile(name)).items():
        autoscaling = deployment._deployment_config.autoscaling_config
        assert autoscaling.max_replicas > autoscaling.min_replicas, deployment_name
        assert autoscaling.downscale_delay_s > autoscaling.upscale_delay_s, deployment_name


def test_mixed_local_places_each_modality_as_mixed_does():
    cloud, local = (built_deployments(load_profile(n)) for n in ("mixed", "mixed-local"))
    for deployment in MODELS:
        cloud_options, local_options = (cloud[deployment].ray_actor_options,
                                        local[deployment].ray_actor_options)
        assert local_options.get("accelerator_type") == cloud_options.get("accelerator_type")
        assert local_options.get("resources") == cloud_options.get("resources")
        assert local_options["num_gpus"] == 0, "no node of the local cluster has a GPU"


def test_mixed_local_runs_audio_in_its_own_python():
    audio = built_deployments(load_profile("mixed-local"))[AUDIO].ray_actor_options
    assert audio["runtime_env"]["py_executable"].endswith("/envs/audio/bin/python")
