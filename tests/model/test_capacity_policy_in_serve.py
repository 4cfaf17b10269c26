"""The capacity policy inside Ray Serve's own code: pickled for its controller as Serve pickles
an application's policy, and called through Serve's application-level wrapper."""

from __future__ import annotations

from tests.model.without_checkout import run_pickled_policy

POLICY = "deployments.replicas.capacity_policy:CapacityPolicy"
KWARGS = {"pool_cpus": 2, "upscale_delay_s": 0, "downscale_delay_s": 30, "groups": {
    "ImageEmbedder": {"group": "vision", "objective_s": 2, "cpus_per_replica": 0.5},
    "SpeechTranscriber": {"group": "audio", "objective_s": 15, "cpus_per_replica": 0.5}}}


def serialized_as_serve_does() -> bytes:
    """What Serve's build task does with an app's autoscaling_policy.policy_function."""
    from ray import cloudpickle
    from ray._common.utils import import_module_and_attr

    module, attr = import_module_and_attr(POLICY)
    # Serve's build task imports the module with Ray loaded, so the module registers its
    # allocator then; here another test may have imported it first, before Ray.
    module._ship_allocator_with_this_module()
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(attr)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def test_serves_controller_runs_the_policy_and_its_allocator_without_this_checkout(tmp_path):
    script = (
        f"policy = cls(**{KWARGS!r})\n"
        "def ctx(name, requests):\n"
        "    return types.SimpleNamespace(deployment_name=name, target_num_replicas=1,\n"
        "        current_num_replicas=1, capacity_adjusted_min_replicas=1,\n"
        "        capacity_adjusted_max_replicas=2, total_num_requests=requests,\n"
        "        total_queued_requests=0, current_time=1.0, policy_state={},\n"
        "        aggregated_metrics={}, config=types.SimpleNamespace(target_ongoing_requests=8))\n"
        "decisions, _ = policy({'v': ctx('ImageEmbedder', 40), 'a': ctx('SpeechTranscriber', 0)})\n"
        "print(decisions['v'], decisions['a'])\n")
    assert run_pickled_policy(tmp_path, serialized_as_serve_does(), script) == "2 1"


def test_serves_app_level_wrapper_passes_the_moves_through_with_zero_delays():
    """Serve wraps an app policy in each deployment's own delays and factors; with the zeros
    the allocator needs, a move it decides is the move Serve makes."""
    from ray.serve._private.common import DeploymentID
    from ray.serve.autoscaling_policy import _apply_app_level_autoscaling_config
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    from deployments.replicas.capacity_policy import CapacityPolicy

    config = AutoscalingConfig(min_replicas=1, max_replicas=2, target_ongoing_requests=8,
                               upscale_delay_s=0, downscale_delay_s=0)
    policy = _apply_app_level_autoscaling_config(CapacityPolicy(**{
        **KWARGS, "pool_cpus": 1.5, "reclaim_delay_s": 0}))
    vision = DeploymentID(name="ImageEmbedder", app_name="mmserve")
    audio = DeploymentID(name="SpeechTranscriber", app_name="mmserve")
    replicas, load = {vision: 2, audio: 1}, {vision: 0, audio: 30}
    state: dict = {}
    for now in (1.0, 1.5):
        contexts = {dep: AutoscalingContext(
            deployment_id=dep, deployment_name=dep.name, app_name=dep.app_name,
            current_num_replicas=replicas[dep], target_num_replicas=replicas[dep],
            running_replicas=[], total_num_requests=load[dep], total_queued_requests=0.0,
            aggregated_metrics={}, raw_metrics={}, capacity_adjusted_min_replicas=1,
            capacity_adjusted_max_replicas=2, policy_state=state.get(dep, {}),
            last_scale_up_time=None, last_scale_down_time=None, current_time=now,
            config=config) for dep in (vision, audio)}
        replicas, state = policy(contexts)
    assert replicas == {vision: 1, audio: 2}


def test_the_config_cluster_deploy_writes_is_one_serve_accepts_and_builds_the_policy_from():
    """The app's autoscaling_policy as Serve's controller takes it: validated by its deploy
    schema, then turned into the instance it calls each tick."""
    from ray.serve._private.autoscaling_state import _resolve_policy_callable
    from ray.serve.config import AutoscalingPolicy
    from ray.serve.schema import ServeDeploySchema

    from cluster.deploy import app_config

    config = app_config({"capacity": {"enabled": True, "upscale_delay_s": 1}})
    app = ServeDeploySchema.model_validate(config).applications[0]
    policy = _resolve_policy_callable(AutoscalingPolicy(**app.autoscaling_policy))
    assert policy.pool_from_cluster and policy.settings.upscale_delay_s == 1
    assert set(policy.groups) == {"TextGenerator", "ImageEmbedder", "SpeechTranscriber"}


def test_each_groups_autoscaling_under_the_allocator_is_one_serve_accepts():
    from ray.serve.config import AutoscalingConfig

    from deployments.core.config import load_config
    from deployments.replicas.serve_options import QUEUE_POLICY, deployment_options

    config = load_config({"capacity": {"enabled": True},
                          "vision": {"autoscaling": {"max_replicas": 2}}})
    for settings in (config.text, config.vision, config.audio):
        autoscaling = AutoscalingConfig(**deployment_options(
            settings, "G", capacity=config.capacity)["autoscaling_config"])
        assert autoscaling.upscale_delay_s == autoscaling.downscale_delay_s == 0
        assert autoscaling.policy.policy_function == QUEUE_POLICY
