"""The queue autoscaling policy inside Ray Serve's own code: pickled for its controller and
wrapped in its delay logic."""

from __future__ import annotations

import yaml

from cluster.deploy import profile_path
from deployments.core.config import load_config
from deployments.replicas.autoscaling_policy import QueuePolicy
from deployments.replicas.serve_options import deployment_options
from tests.model.without_checkout import run_pickled_policy


def test_serves_controller_runs_the_policy_without_this_checkout_on_its_path(tmp_path):
    """Serve imports the policy where the app is built and pickles it by value; its controller
    unpickles it in a process that cannot import `deployments`, and calls it."""
    from ray.serve.config import AutoscalingConfig

    config = load_config({"vision": {"autoscaling": {
        "policy": "queue", "max_replicas": 2, "target_ongoing_requests": 16,
        "upscale_delay_s": 0, "downscale_delay_s": 30}}})
    autoscaling = deployment_options(config.vision, "ImageEmbedder")["autoscaling_config"]
    policy = AutoscalingConfig(**autoscaling).policy
    script = (
        "ctx = types.SimpleNamespace(total_num_requests=40, target_num_replicas=1,\n"
        "    capacity_adjusted_min_replicas=1, capacity_adjusted_max_replicas=2,\n"
        "    current_time=1.0, policy_state={},\n"
        "    config=types.SimpleNamespace(target_ongoing_requests=16))\n"
        "print(cls(upscale_delay_s=0, downscale_delay_s=30)(ctx)[0])\n")
    assert run_pickled_policy(tmp_path, policy.get_serialized_policy_def(), script) == "2"


def test_serves_own_wrapper_passes_the_decision_through_with_the_profiles_delays():
    """Serve wraps a custom policy in its own delay logic; with the config's zeros the group
    scales up and down the profile's delays after the load changed, not twice them."""
    from ray.serve._private.common import DeploymentID
    from ray.serve.autoscaling_policy import _apply_autoscaling_config
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    args = yaml.safe_load(profile_path("cpu").read_text())["applications"][0]["args"]
    config = AutoscalingConfig(**deployment_options(load_config(args).vision,
                                                        "ImageEmbedder")["autoscaling_config"])
    policy = _apply_autoscaling_config(QueuePolicy(**config.policy.policy_kwargs))
    deployment = DeploymentID(name="ImageEmbedder", app_name="mmserve")
    target, state, now, seen = 1, {}, 0.0, []
    for load, seconds in ((40, 3), (0, 31)):
        for _ in range(round(seconds / 0.5)):
            now += 0.5
            target, state = policy(AutoscalingContext(
                deployment_id=deployment, deployment_name=deployment.name,
                app_name=deployment.app_name, current_num_replicas=target,
                target_num_replicas=target, running_replicas=[], total_num_requests=load,
                total_queued_requests=0.0, aggregated_metrics={}, raw_metrics={},
                capacity_adjusted_min_replicas=config.min_replicas,
                capacity_adjusted_max_replicas=config.max_replicas, policy_state=state,
                last_scale_up_time=None, last_scale_down_time=None, current_time=now,
                config=config))
            seen.append((now, target))
    delays = config.policy.policy_kwargs
    up = min(t for t, replicas in seen if replicas == 2)
    down = min(t for t, replicas in seen if t > up and replicas == 1)
    assert up == 0.5 + delays["upscale_delay_s"]  # the first loaded tick, then the delay
    assert down == 3.5 + delays["downscale_delay_s"]  # the first idle tick, then its delay
