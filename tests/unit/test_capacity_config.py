"""The `capacity:` section: its checks, the objective each group is judged by, the groups'
Serve autoscaling under the allocator, and the app's autoscaling_policy it makes."""

from __future__ import annotations

import json

import pytest

from deployments.core.config import ConfigError, load_config
from deployments.replicas.serve_options import (
    CAPACITY_POLICY,
    QUEUE_POLICY,
    capacity_policy,
    deployment_options,
)

ON = {"capacity": {"enabled": True}}


def test_off_by_default_and_then_the_groups_scale_as_before():
    config = load_config({"vision": {"autoscaling": {"max_replicas": 2}}})
    assert not config.capacity.enabled and capacity_policy(config) is None
    autoscaling = deployment_options(config.vision, "V", capacity=config.capacity)[
        "autoscaling_config"]
    assert "policy" not in autoscaling and autoscaling["upscale_delay_s"] == 10.0
    assert "metrics_interval_s" not in autoscaling  # Serve's own default
    assert deployment_options(config.audio, "A", capacity=config.capacity)["num_replicas"] == 1


@pytest.mark.parametrize(("capacity", "words"), [
    ({"slack_fraction": 0.5, "busy_fraction": 0.5}, "slack_fraction"),
    ({"reclaim_delay_s": 60, "downscale_delay_s": 30}, "reclaim_delay_s"),
    ({"metrics_interval_s": 2, "look_back_period_s": 1}, "look_back_period_s"),
    ({"pool_cpus": 0}, "capacity.pool_cpus"),
])
def test_settings_that_contradict_each_other_are_refused(capacity, words):
    with pytest.raises(ConfigError, match=words):
        load_config({"capacity": capacity})


def test_each_group_is_judged_by_its_own_routes_first_due_time():
    config = load_config({**ON, "slo": {"chat": {"ttft_s": 1.5, "e2e_s": 20},
                                        "embeddings": {"e2e_s": 3},
                                        "transcriptions": {"e2e_s": 12}}})
    assert [config.group_objective_s(g) for g in ("text", "vision", "audio")] == [1.5, 3, 12]
    no_ttft = load_config({**ON, "slo": {"chat": {"ttft_s": None, "e2e_s": 20}}})
    assert no_ttft.group_objective_s("text") == 20


def test_enabling_it_needs_an_objective_for_every_group_and_no_queue_policy_at_the_ingress():
    with pytest.raises(ConfigError, match=r"slo\.transcriptions .*audio group"):
        load_config({**ON, "slo": {"transcriptions": {"e2e_s": None}}})
    with pytest.raises(ConfigError, match="ingress.autoscaling.policy"):
        load_config({**ON, "ingress": {"autoscaling": {"policy": "queue"}}})
    load_config({"ingress": {"autoscaling": {"policy": "queue"}}})  # fine with it off


def test_under_the_allocator_a_group_keeps_its_bounds_and_serve_adds_no_delay():
    config = load_config({**ON, "vision": {"autoscaling": {
        "min_replicas": 1, "max_replicas": 3, "upscale_delay_s": 4, "downscale_delay_s": 40,
        "look_back_period_s": 5}}})
    autoscaling = deployment_options(config.vision, "V", capacity=config.capacity)[
        "autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 3)
    assert autoscaling["upscale_delay_s"] == autoscaling["downscale_delay_s"] == 0.0
    # where the app runs without its policy, the group's own queue and delays
    assert autoscaling["policy"] == {"policy_function": QUEUE_POLICY, "policy_kwargs": {
        "upscale_delay_s": 4, "downscale_delay_s": 40}}
    assert autoscaling["metrics_interval_s"] == 0.5  # the allocator's, where unset
    assert autoscaling["look_back_period_s"] == 5  # the group's own


def test_under_the_allocator_a_group_without_autoscaling_is_pinned_at_its_count():
    config = load_config({**ON, "audio": {"num_replicas": 2}})
    options = deployment_options(config.audio, "A", capacity=config.capacity)
    assert "num_replicas" not in options
    autoscaling = options["autoscaling_config"]
    assert autoscaling["min_replicas"] == autoscaling["max_replicas"] == 2


def test_the_apps_policy_names_every_group_with_its_objective_and_cpus():
    config = load_config({
        **ON, "capacity": {"enabled": True, "upscale_delay_s": 1, "reclaim_delay_s": 3},
        "ingress": {"num_cpus": 0.25, "autoscaling": {"max_replicas": 2}},
        "audio": {"resources": {"num_cpus": 1}}})
    policy = capacity_policy(config)
    assert policy["policy_function"] == CAPACITY_POLICY
    kwargs = policy["policy_kwargs"]
    assert kwargs["groups"] == {
        "TextGenerator": {"group": "text", "objective_s": 2.0, "cpus_per_replica": 0.5},
        "ImageEmbedder": {"group": "vision", "objective_s": 2.0, "cpus_per_replica": 0.5},
        "SpeechTranscriber": {"group": "audio", "objective_s": 15.0, "cpus_per_replica": 1}}
    assert kwargs["pool_cpus"] is None and kwargs["reserved_cpus"] == 0.5
    assert (kwargs["upscale_delay_s"], kwargs["reclaim_delay_s"]) == (1, 3)
    assert kwargs["busy_fraction"] == 0.5 and kwargs["metrics"] is True
    assert json.loads(json.dumps(policy)) == policy  # Serve takes JSON-able kwargs only


def test_the_policy_kwargs_build_the_policy_serve_will_run():
    from deployments.replicas.capacity_policy import CapacityPolicy

    config = load_config({"capacity": {"enabled": True, "pool_cpus": 4,
                                       "downscale_delay_s": 20}})
    policy = CapacityPolicy(**capacity_policy(config)["policy_kwargs"])
    assert policy.settings.pool_cpus == 4 and policy.settings.downscale_delay_s == 20
    assert not policy.pool_from_cluster and policy.export_metrics
