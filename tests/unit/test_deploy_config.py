"""One way to find a profile and turn it into a Serve config (cluster/deploy.py), for
`make serve`, the bench and the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cluster.deploy import (
    APP_NAME,
    BUILDER,
    UnknownProfile,
    app_config,
    profile_path,
    serve_config,
    with_args,
    with_overrides,
)


def test_profiles_are_found_by_name_in_cluster_then_bench_or_by_path(tmp_path):
    assert profile_path("cpu").parent.name == "profiles"
    assert profile_path("cpu").parent.parent.name == "cluster"
    assert profile_path("clip").parent.parent.name == "bench"
    own = tmp_path / "mine.yaml"
    own.write_text("text: {}\n")
    assert profile_path(str(own)) == own
    with pytest.raises(UnknownProfile, match="known: .*cpu"):
        profile_path("no-such-profile")


def test_a_profile_becomes_one_app_at_the_root_on_a_loopback_port(tmp_path):
    full = serve_config("cpu", http_port=18000)
    app = full["applications"][0]
    assert (app["name"], app["route_prefix"]) == (APP_NAME, "/")
    assert full["http_options"]["host"] == "127.0.0.1" and full["http_options"]["port"] == 18000
    args_only = tmp_path / "args.yaml"
    args_only.write_text(yaml.safe_dump({"text": {"num_replicas": 1}}))
    built = serve_config(str(args_only))
    assert built["applications"][0]["args"] == {"text": {"num_replicas": 1}}
    assert built["applications"][0]["import_path"] == "serve_app.app:build_app"
    assert "http_options" not in built


def test_overrides_merge_by_deployment_name():
    config = app_config({}, [{"name": "ImageEmbedder", "num_replicas": 2}])
    changed = with_overrides(config, [{"name": "ImageEmbedder", "user_config": {"a": 1}},
                                      {"name": "TextGenerator", "num_replicas": 1}])
    deployments = {d["name"]: d for d in changed["applications"][0]["deployments"]}
    assert deployments["ImageEmbedder"] == {"name": "ImageEmbedder", "num_replicas": 2,
                                            "user_config": {"a": 1}}
    assert deployments["TextGenerator"]["num_replicas"] == 1
    assert config["applications"][0]["deployments"] == [{"name": "ImageEmbedder",
                                                         "num_replicas": 2}]


def test_args_merge_field_by_field_and_leave_the_config_as_it_was():
    config = serve_config("cpu-transformers")
    changed = with_args(config, {"text": {"engine": {"dtype": "float32"}}})
    engine = changed["applications"][0]["args"]["text"]["engine"]
    assert engine["dtype"] == "float32" and engine["name"] == "transformers"
    assert changed["applications"][0]["args"]["vision"] == config["applications"][0]["args"][
        "vision"]
    assert config["applications"][0]["args"]["text"]["engine"]["dtype"] == "auto"


def test_the_app_carries_the_capacity_policy_exactly_when_its_args_enable_it():
    from deployments.replicas.serve_options import CAPACITY_POLICY

    off = app_config({})["applications"][0]
    assert "autoscaling_policy" not in off
    on = app_config({"capacity": {"enabled": True, "pool_cpus": 2}})["applications"][0]
    policy = on["autoscaling_policy"]
    assert policy["policy_function"] == CAPACITY_POLICY
    assert policy["policy_kwargs"]["pool_cpus"] == 2
    assert set(policy["policy_kwargs"]["groups"]) == {"TextGenerator", "ImageEmbedder",
                                                      "SpeechTranscriber"}


def test_changing_the_args_adds_or_removes_only_our_policy(tmp_path):
    config = serve_config("cpu")
    assert "autoscaling_policy" not in config["applications"][0]
    enabled = with_args(config, {"capacity": {"enabled": True}})
    assert enabled["applications"][0]["autoscaling_policy"]["policy_kwargs"]["groups"][
        "ImageEmbedder"]["cpus_per_replica"] == 0.5
    disabled = with_args(enabled, {"capacity": {"enabled": False}})
    assert "autoscaling_policy" not in disabled["applications"][0]
    theirs = {"policy_function": "somewhere:Else"}
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"applications": [
        {"import_path": "serve_app.app:build_app", "args": {},
         "autoscaling_policy": theirs}]}))
    assert serve_config(str(own))["applications"][0]["autoscaling_policy"] == theirs


def test_a_bad_capacity_section_fails_before_anything_is_deployed():
    from deployments.core.config import ConfigError

    with pytest.raises(ConfigError, match="slack_fraction"):
        app_config({"capacity": {"enabled": True, "slack_fraction": 0.9}})


def test_serve_run_of_a_profile_gets_the_policy_in_the_file_it_reads(tmp_path):
    """`make serve` runs `serve run FILE`: a profile enabling the allocator is written out
    with the app's policy; one that does not is run as it is, unless its port changes."""
    from cluster.launch import served_config_file

    def profile(name: str, args: dict) -> tuple[Path, dict]:
        config = {"applications": [{"name": "mmserve", "import_path": BUILDER, "args": args}]}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path, config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path, config = profile("capacity", {"capacity": {"enabled": True}})
    served = served_config_file(path, config, None, run_dir)
    assert served.parent == run_dir
    assert "autoscaling_policy" in yaml.safe_load(served.read_text())["applications"][0]
    assert "autoscaling_policy" not in config["applications"][0]  # the profile as it was
    path, config = profile("plain", {})
    assert served_config_file(path, config, None, run_dir) == path
    moved = served_config_file(path, config, 18001, run_dir)
    assert yaml.safe_load(moved.read_text())["http_options"]["port"] == 18001
